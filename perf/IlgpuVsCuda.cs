namespace NativeTensor.Perf;

/// <summary>
/// The comparison only this library can make: each op as an ILGPU C# kernel (<c>ilgpu:cuda:N</c>) and as the hand-written
/// CUDA C kernel (<c>cuda:N</c>) on the same GPU, validated by the same cases and timed in the same run, beside the
/// copy of the same bytes on that GPU. Built from the rows the sections already measured; prints nothing unless both
/// devices of a GPU were timed (<c>--device cuda:0,ilgpu:cuda:0</c>, or no <c>--device</c> on a GPU machine).
/// </summary>
internal static class IlgpuVsCuda
{
    private const string Ilgpu = "ilgpu:";

    public static void Print(IReadOnlyList<Row> gathers, IReadOnlyList<ConversionRow> elementwise, IReadOnlyList<LinalgRow> linalg, Report report)
    {
        var cells = new List<string[]> { new[] { "op", "GPU", "CUDA C", "ILGPU", "ILGPU / CUDA C", "copy (ceiling)", "CUDA C / copy", "ILGPU / copy" } };
        foreach (Row cuda in gathers.Where(r => !r.IsPeer && IsCuda(r.Backend)))
        {
            Row? ilgpu = gathers.FirstOrDefault(r => !r.IsPeer && r.Backend == Ilgpu + cuda.Backend && r.Op == cuda.Op && r.Case == cuda.Case);
            Row? copy = gathers.FirstOrDefault(r => r.IsCopyCeiling && r.Backend == cuda.Backend && r.Case == cuda.Case);
            if (ilgpu is not null && !cuda.IsCopyCeiling) cells.Add(Bandwidth($"{cuda.Op}, {cuda.Case.Label}", cuda.Backend, cuda.Gbps, ilgpu.Gbps, copy?.Gbps));
        }
        foreach (ConversionRow cuda in elementwise.Where(r => IsCuda(r.Backend) && !r.Op.StartsWith("copy", StringComparison.Ordinal)))
        {
            ConversionRow? ilgpu = elementwise.FirstOrDefault(r => r.Backend == Ilgpu + cuda.Backend && r.Op == cuda.Op);
            if (ilgpu is not null) cells.Add(Bandwidth(cuda.Op, cuda.Backend, cuda.Gbps, ilgpu.Gbps, CopyTable.CopyOf(cuda, elementwise)?.Gbps));
        }
        foreach (LinalgRow cuda in linalg.Where(r => !r.IsPeer && IsCuda(r.Backend)))
        {
            LinalgRow? ilgpu = linalg.FirstOrDefault(r => !r.IsPeer && r.Backend == Ilgpu + cuda.Backend && r.Op == cuda.Op && (r.M, r.K, r.N) == (cuda.M, cuda.K, cuda.N));
            if (ilgpu is not null)
                cells.Add([$"{cuda.Op} {cuda.M} x {cuda.K} x {cuda.N}", cuda.Backend, $"{cuda.Gflops:F0} GFLOP/s", $"{ilgpu.Gflops:F0} GFLOP/s",
                    $"{ilgpu.Gflops / cuda.Gflops:F2}", "—", "—", "—"]);
        }
        if (cells.Count == 1) return;
        report.Section("ILGPU C# kernels vs hand-written CUDA C, same GPU, same run");
        report.Table(cells, [false, false, true, true, true, true, true, true]);
    }

    private static bool IsCuda(string backend) => backend.StartsWith("cuda:", StringComparison.Ordinal) && !backend.Contains(' ');

    private static string[] Bandwidth(string op, string gpu, double cuda, double ilgpu, double? copy) =>
    [
        op, gpu, $"{cuda:F1} GB/s", $"{ilgpu:F1} GB/s", $"{ilgpu / cuda:F2}",
        copy is { } c ? $"{c:F1} GB/s" : "—", copy is { } c1 ? $"{cuda / c1:F2}" : "—", copy is { } c2 ? $"{ilgpu / c2:F2}" : "—",
    ];
}
