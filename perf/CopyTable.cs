namespace NativeTensor.Perf;

/// <summary>
/// The table the element-wise sections share (unscale, optimizer steps): each row beside the copy of the same number
/// of bytes on the same device, its ceiling.
/// </summary>
internal static class CopyTable
{
    /// <summary>The copy row on the same device that moves as many bytes as <paramref name="row"/>.</summary>
    /// <remarks>A peer's row ("cuda:0 torch 2.x") is measured against the copy of the device it ran on.</remarks>
    public static ConversionRow? CopyOf(ConversionRow row, IReadOnlyList<ConversionRow> rows) =>
        rows.FirstOrDefault(r => r.Backend == row.Backend.Split(' ')[0] && r.MovedBytes == row.MovedBytes && r.Op.StartsWith("copy", StringComparison.Ordinal));

    public static void Print(IReadOnlyList<ConversionRow> rows, long elements, Report report)
    {
        var cells = new List<string[]> { new[] { "op", "elements", "backend", "median ms (min–max)", "GB/s", "% of copy" } };
        foreach (ConversionRow row in rows)
        {
            ConversionRow? copy = CopyOf(row, rows);
            cells.Add(
            [
                row.Op, $"{elements:N0}", row.Backend,
                $"{row.Time.MedianMs:F2} ({row.Time.MinMs:F2}–{row.Time.MaxMs:F2})",
                $"{row.Gbps:F1}",
                copy is null ? "—" : $"{100 * row.Gbps / copy.Gbps:F0}%",
            ]);
        }
        report.Table(cells, [false, true, false, true, true, true]);
    }
}
