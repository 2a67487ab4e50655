namespace NativeTensor.Perf;

/// <summary>The project's measured targets for the windows op, each with its figure and whether this run met it.</summary>
internal static class Targets
{
    private const double GatherOverCopy = 0.85;
    private const double GatherOverNumpy = 1.2;
    private const double LazyOverEager = 0.95;
    private const double ConvertOverCopy = 0.85;
    /// <summary>Unscale and optimizer steps: the share of a copy of the same bytes they must reach.</summary>
    private const double UnscaleOverCopy = 0.80;
    /// <summary>Float32 MatMul at 1024^3 on the CPU: the share of NumPy's (OpenBLAS) GFLOP/s it must reach.</summary>
    private const double MatMulOverNumpy = 0.7;

    public static void Print(IReadOnlyList<Row> rows, MemoryResult? memory, Report report)
    {
        foreach (Row gather in rows.Where(r => r.IsOurGather && r.Case == GatherCase.Embedding && r.Backend == Device.Cpu.Spec))
        {
            Row? copy = Bandwidth.CeilingOf(gather, rows);
            if (copy is not null)
                Say(report, $"cpu {gather.Op} >= {GatherOverCopy * 100:F0}% of copy (embedding batch)",
                    gather.Gbps / copy.Gbps, GatherOverCopy, $"{gather.Gbps:F1} / {copy.Gbps:F1} GB/s = {gather.Gbps / copy.Gbps * 100:F0}%");
            Row? numpy = rows.FirstOrDefault(p => p.IsPeer && p.Case == gather.Case && p.Ceiling == gather.Backend);
            if (numpy is null) report.Line($"cpu {gather.Op} >= {GatherOverNumpy}x numpy: no numpy figure this run");
            else
                Say(report, $"cpu {gather.Op} >= {GatherOverNumpy}x numpy ({numpy.Op[6..]})",
                    gather.Gbps / numpy.Gbps, GatherOverNumpy, $"{gather.Gbps:F1} / {numpy.Gbps:F1} GB/s = {gather.Gbps / numpy.Gbps:F2}x");
        }
        if (memory is null) return;
        Say(report, "lazy epoch peak RSS <= frames + 4 batches + 150 MB",
            memory.BudgetBytes / (double)memory.LazyPeakBytes, 1, $"{memory.LazyPeakBytes / 1e6:F1} MB of {memory.BudgetBytes / 1e6:F1} MB; eager would need {memory.EagerBytes / 1e9:F2} GB");
        Say(report, $"lazy batches/s >= {LazyOverEager * 100:F0}% of iterating eager windows",
            memory.LazyOverEager, LazyOverEager,
            $"{memory.LazyOverEager * 100:F0}% on the scaled-down run; the full-size lazy epoch (out of cache) runs at {memory.FullLazyOverEager * 100:F0}% of it");
        Say(report, "bf16 frames: lazy peak RSS <= half the float32 frames + 4 float32 batches + 150 MB",
            memory.Bf16BudgetBytes / (double)memory.Bf16PeakBytes, 1, $"{memory.Bf16PeakBytes / 1e6:F1} MB of {memory.Bf16BudgetBytes / 1e6:F1} MB (float32 frames: {memory.LazyPeakBytes / 1e6:F1} MB)");
        Say(report, "bf16 frames gathered into float32 batches: batches/s within 10% of the float32 gather",
            memory.Bf16OverFloat32, 0.9, $"{memory.Bf16OverFloat32:F2} of the float32 epoch's batches/s");
    }

    /// <summary>Issue 3's conversion targets on the CPU: at least 85% of a copy of the same bytes, and faster than TensorPrimitives.</summary>
    public static void PrintConversions(IReadOnlyList<ConversionRow> rows, Report report)
    {
        ConversionRow? copy = rows.FirstOrDefault(r => r.Op == Precision.CopyOp && r.Backend == Device.Cpu.Spec);
        if (copy is null) return;
        // The four directions between Float32 and a 16-bit format; 16 <-> 16 moves fewer bytes than the copy row.
        foreach (ConversionRow row in rows.Where(r => r.Backend == Device.Cpu.Spec && r.Op.StartsWith("convert", StringComparison.Ordinal) && r.Op.Contains("f32")))
        {
            Say(report, $"cpu {row.Op} >= {ConvertOverCopy * 100:F0}% of copy", row.Gbps / copy.Gbps, ConvertOverCopy,
                $"{row.Gbps:F1} / {copy.Gbps:F1} GB/s = {row.Gbps / copy.Gbps * 100:F0}%");
            if (Precision.Peer(row, rows) is { } peer)
                Say(report, $"cpu {row.Op} faster than {peer.Op[6..]}", row.Gbps / peer.Gbps, 1, $"{row.Gbps / peer.Gbps:F2}x");
        }
    }

    /// <summary>The unscale target on the CPU and CUDA: at least 80% of the bandwidth its bytes imply, i.e. of a copy of the same bytes.</summary>
    public static void PrintUnscale(IReadOnlyList<ConversionRow> rows, Report report) =>
        PrintOverCopy(rows.Where(r => r.Op.StartsWith("unscale", StringComparison.Ordinal)), rows, report);

    /// <summary>The AdamW and SGD step targets, the same rule: at least 80% of a copy of the bytes the step reads and writes.</summary>
    public static void PrintOptimizerSteps(IReadOnlyList<ConversionRow> rows, Report report) =>
        PrintOverCopy(rows.Where(r => !r.Op.StartsWith("copy", StringComparison.Ordinal) && !r.Op.StartsWith("peer", StringComparison.Ordinal)), rows, report);

    /// <summary>Our CUDA unscale and AdamW rows beside PyTorch's on the same GPU (no fixed target: the issue asks for the figures).</summary>
    public static void PrintTorch(IReadOnlyList<ConversionRow> rows, Report report)
    {
        (string Ours, string Torch)[] pairs =
            [("unscale: f32", "peer: torch unscale f32"), ("unscale: bf16", "peer: torch unscale bf16"), ("adamw: f32 grad, no working", "peer: torch adamw fused")];
        foreach ((string ours, string torch) in pairs)
            foreach (ConversionRow row in rows.Where(r => r.Op == ours && r.Backend.StartsWith("cuda", StringComparison.Ordinal)))
                if (rows.FirstOrDefault(r => r.Op == torch && r.Backend.StartsWith(row.Backend + " torch", StringComparison.Ordinal)) is { } peer)
                    report.Line($"info   {row.Backend} {ours} vs {peer.Op[6..]}: {row.Gbps:F0} / {peer.Gbps:F0} GB/s = {row.Gbps / peer.Gbps:F2}x");
    }

    /// <summary>Moments.Update beside NumPy's np.cov (and torch.cov on a GPU): no fixed target yet, the issue asks for the figures.</summary>
    public static void PrintMoments(IReadOnlyList<MomentsRow> rows, Report report)
    {
        foreach (MomentsRow ours in rows.Where(r => r.Op == Moments.UpdateOp))
            foreach (MomentsRow peer in rows.Where(r => r.Op.StartsWith("peer", StringComparison.Ordinal) && r.Backend.StartsWith(ours.Backend + " ", StringComparison.Ordinal)))
                report.Line($"info   {ours.Backend} moments update [{Moments.Rows}, {Moments.Features}] vs {peer.Op[6..]} ({peer.Backend}): " +
                    $"{ours.Time.MedianMs:F1} / {peer.Time.MedianMs:F1} ms = {peer.Time.MedianMs / ours.Time.MedianMs:F2}x the peer's speed");
    }

    /// <summary>Issue 4's CPU target: Float32 MatMul at 1024^3 at least 0.7x NumPy (OpenBLAS) on the same machine; the other shapes as figures.</summary>
    public static void PrintLinalg(IReadOnlyList<LinalgRow> rows, Report report)
    {
        foreach (LinalgRow row in rows.Where(r => !r.IsPeer))
        {
            LinalgRow? peer = Linalg.PeerOf(row, rows);
            bool target = row.Backend == Device.Cpu.Spec && row.Op == Linalg.MatMulOp && row is { M: 1024, K: 1024, N: 1024 };
            if (target && peer is null) report.Line($"cpu {row.Op} {row.Shape} >= {MatMulOverNumpy}x numpy: no numpy figure this run");
            else if (target) Say(report, $"cpu {row.Op} {row.Shape} >= {MatMulOverNumpy}x numpy", row.Gflops / peer!.Gflops, MatMulOverNumpy,
                $"{row.Gflops:F1} / {peer.Gflops:F1} GFLOP/s = {row.Gflops / peer.Gflops:F2}x");
            else if (peer is not null)
                report.Line($"info   {row.Backend} {row.Op} {row.Shape} vs {peer.Backend.Split(' ')[1]}: {row.Gflops:F1} / {peer.Gflops:F1} GFLOP/s = {row.Gflops / peer.Gflops:F2}x");
        }
    }

    /// <summary>Issue 5's mapped-file targets: warm gathers within 10% of gathering from RAM; cold and the lazy epoch's peak RSS as figures.</summary>
    public static void PrintMapped(MappedResult? mapped, Report report)
    {
        if (mapped is null) return;
        Say(report, "cpu gather from a mapped .npy (436 MB, page cache warm) within 10% of gathering from RAM", mapped.WarmMappedOverRam, 0.9,
            $"{mapped.WarmMappedOverRam:F3} of RAM's batches/s");
        report.Line($"info   cpu gather from a mapped .npy, cold (dropped from the page cache): {mapped.ColdBatchesPerSecond:N1} batches/s ({mapped.ColdGbps:F2} GB/s)");
        report.Line($"info   lazy epoch peak RSS: frames mapped {mapped.MappedPeakBytes / 1e6:F1} MB, frames in RAM {mapped.RamPeakBytes / 1e6:F1} MB");
    }

    private static void PrintOverCopy(IEnumerable<ConversionRow> judged, IReadOnlyList<ConversionRow> rows, Report report)
    {
        foreach (ConversionRow row in judged.Where(r => r.Backend == Device.Cpu.Spec || r.Backend.StartsWith("cuda", StringComparison.Ordinal)))
        {
            if (CopyTable.CopyOf(row, rows) is not { } copy) continue;
            Say(report, $"{row.Backend} {row.Op} >= {UnscaleOverCopy * 100:F0}% of the bandwidth its bytes imply (copy of the same bytes)",
                row.Gbps / copy.Gbps, UnscaleOverCopy, $"{row.Gbps:F1} / {copy.Gbps:F1} GB/s = {row.Gbps / copy.Gbps * 100:F0}%");
        }
    }

    internal static void Say(Report report, string target, double measured, double needed, string figures) =>
        report.Line($"{(measured >= needed ? "met   " : "MISSED")} {target}: {figures}");
}
