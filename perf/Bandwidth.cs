using NativeTensor.Runtime;

namespace NativeTensor.Perf;

/// <summary>One line of the bandwidth table. <paramref name="Ceiling"/> names the device whose copy row is this row's 100%.</summary>
internal sealed record Row(string Op, GatherCase Case, string Backend, string Ceiling, Timing Time, bool IsPeer = false)
{
    public double Gbps => Time.GigabytesPerSecond(Case.MovedBytes);

    public bool IsCopyCeiling => Op == Bandwidth.CopyOp;

    public bool IsOurGather => !IsPeer && Op.StartsWith("gather", StringComparison.Ordinal);
}

/// <summary>
/// Times the windows gather against the copy of the same bytes on the same device, for every case, and prints the
/// table. Each op's name is exactly what its timed body calls.
/// </summary>
internal static class Bandwidth
{
    public const string CopyOp = "copy: Backend.Copy";
    public const string SpanCopyOp = "copy: Span.CopyTo, 1 thread";
    public const string GatherHostOp = "gather: Windows.Gather, host starts";
    public const string GatherDeviceOp = "gather: Windows.Gather, device starts";

    /// <summary>Every case on <paramref name="device"/>; cases with the same frames share one frames tensor.</summary>
    public static List<Row> Run(Device device, IReadOnlyList<CaseStarts> cases, RunPlan plan)
    {
        var rows = new List<Row>();
        var frames = new Dictionary<string, Tensor>();
        try
        {
            foreach (CaseStarts starts in cases)
            {
                GatherCase c = starts.Case;
                string key = $"{c.DType} {string.Join("x", c.FrameShape)}";
                if (!frames.TryGetValue(key, out Tensor? f)) frames[key] = f = c.CreateFrames(device);
                rows.AddRange(Measure(device, f, starts, plan));
            }
        }
        finally
        {
            foreach (Tensor f in frames.Values) f.Dispose();
        }
        return rows;
    }

    /// <summary>The copy ceiling and both gathers, timed rep by rep; on the CPU then a single-threaded Span copy.</summary>
    private static List<Row> Measure(Device device, Tensor frames, CaseStarts starts, RunPlan plan)
    {
        GatherCase c = starts.Case;
        Backend backend = device.Backend;
        // One output buffer, reused by every op (as a training loop reuses its batch), so all write to the same place.
        using Tensor output = Tensor.Empty(c.DType, c.OutputShape, device);
        Tensor[] deviceStarts = starts.DeviceGather.Sets.Select(set => Upload(set, device)).ToArray();
        try
        {
            (string Op, Action<int> Body)[] ops =
            [
                (CopyOp, i => backend.Copy(frames.Buffer, starts.Copy.CopyStarts[i] * c.RowBytes, output.Buffer, 0, c.BatchBytes)),
                (GatherHostOp, i => Windows.Gather(frames, starts.HostGather.Sets[i], c.Window, output)),
                (GatherDeviceOp, i => Windows.Gather(frames, deviceStarts[i], c.Window, output)),
            ];
            Timing[] timings = Timer.Interleaved(backend, plan, ops.Select(o => o.Body).ToArray());
            var rows = ops.Select((o, k) => new Row(o.Op, c, device.Spec, device.Spec, timings[k])).ToList();
            if (device.Kind == DeviceKind.Cpu)
            {
                // Timed on its own: between the multi-threaded ops it would let the pool's worker fall asleep, and
                // whichever op came next would pay the wake-up (about 0.1 ms here) that the others do not.
                Timing span = Timer.Interleaved(backend, plan,
                [
                    i => Tensor.CpuBytes(frames.Buffer, starts.SpanCopy.CopyStarts[i] * c.RowBytes, (int)c.BatchBytes)
                        .CopyTo(Tensor.CpuBytes(output.Buffer, 0, (int)c.BatchBytes)),
                ])[0];
                rows.Insert(1, new Row(SpanCopyOp, c, device.Spec, device.Spec, span));
            }
            return rows;
        }
        finally
        {
            foreach (Tensor t in deviceStarts) t.Dispose();
        }
    }

    private static Tensor Upload(long[] starts, Device device)
    {
        Tensor host = Tensor.FromArray(starts);
        if (device.Kind == DeviceKind.Cpu) return host;
        using (host) return host.To(device);
    }

    /// <summary>The table: each row's GB/s beside the copy of the same bytes on its device, and our gathers beside the peer.</summary>
    public static void PrintTable(IReadOnlyList<Row> rows, Report report)
    {
        var cells = new List<string[]>
        {
            new[] { "op", "shape", "dtype", "backend", "median ms (min–max)", "GB/s", "% of copy", "vs peer" },
        };
        foreach (Row row in rows)
        {
            Row? ceiling = CeilingOf(row, rows);
            Row? peer = row.IsOurGather ? rows.FirstOrDefault(p => p.IsPeer && p.Case == row.Case && p.Ceiling == row.Backend) : null;
            cells.Add(
            [
                row.Op, row.Case.ShapeText, row.Case.DTypeText, row.Backend,
                $"{Ms(row.Time.MedianMs)} ({Ms(row.Time.MinMs)}–{Ms(row.Time.MaxMs)})",
                $"{row.Gbps:F1}",
                ceiling is null ? "—" : $"{100 * row.Gbps / ceiling.Gbps:F0}%",
                peer is null ? "—" : $"{row.Gbps / peer.Gbps:F2}x {peer.Backend.Split(' ')[0]}",
            ]);
        }
        report.Table(cells, [false, false, false, false, true, true, true, true]);
    }

    /// <summary>gather / copy per case and device, spelled out beside the table.</summary>
    public static void PrintRatios(IReadOnlyList<Row> rows, Report report)
    {
        foreach (Row copy in rows.Where(r => r.IsCopyCeiling))
        {
            Row[] gathers = rows.Where(r => r.IsOurGather && r.Case == copy.Case && r.Backend == copy.Backend).ToArray();
            string ratios = string.Join(", ", gathers.Select(g => $"{g.Op["gather: Windows.Gather, ".Length..]} {g.Gbps / copy.Gbps:F2}"));
            report.Line($"gather / copy  {copy.Backend,-9} {copy.Case.Label,-12} {copy.Case.ShapeText,-32} {ratios}");
        }
    }

    /// <summary>The copy row that is <paramref name="row"/>'s ceiling: same case, on the device named by <see cref="Row.Ceiling"/>.</summary>
    public static Row? CeilingOf(Row row, IReadOnlyList<Row> rows) =>
        rows.FirstOrDefault(r => r.IsCopyCeiling && r.Case == row.Case && r.Backend == row.Ceiling);

    private static string Ms(double milliseconds) => milliseconds >= 10 ? $"{milliseconds:F1}" : $"{milliseconds:F3}";
}
