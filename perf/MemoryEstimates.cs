using NativeTensor.Memory;

namespace NativeTensor.Perf;

/// <summary>
/// MemoryEstimator's figures for the memory scenario beside what the runs measured, so the estimator is checked
/// against the machine, not only against its own formulas. A child's measured figure is its peak RSS (VmHWM) minus
/// its RSS before it made or mapped the frames: the .NET runtime's own memory is no part of any estimate.
/// </summary>
internal static class MemoryEstimates
{
    public static void Print(Report report, MemoryResult? memory, MappedResult? mapped)
    {
        if (memory is null && mapped is null) return;
        const long F = MemoryScenario.Frames, Row = MemoryScenario.Row;
        const int W = MemoryScenario.Window, B = MemoryScenario.Batch;
        MemoryEstimate lazy = MemoryEstimator.LazyWindowEstimate(F, Row, DType.Float32, W, B, prefetch: 0);
        report.Line("each epoch gathers into one reused batch (prefetch 0); terms of the lazy estimate:");
        foreach (MemoryTerm term in lazy.Terms)
            report.Line($"  {term.Name,-20} {MB(term.Bytes),12}   {term.Formula}");
        report.Line("");
        report.Line("| case | estimate | measured | measured / estimate | how measured |");
        report.Line("| --- | ---: | ---: | ---: | --- |");
        if (memory is not null)
        {
            Compare(report, "lazy epoch, Float32 frames in RAM", lazy.Total, Working(memory.Lazy), "child peak RSS - RSS before the frames");
            long bf16 = MemoryEstimator.LazyWindowBytes(F, Row, DType.BFloat16, W, B, 0, outputType: DType.Float32);
            Compare(report, "lazy epoch, BFloat16 frames, Float32 batches", bf16, Working(memory.Bf16), "child peak RSS - RSS before the frames");
        }
        if (mapped is not null)
            Compare(report, "lazy epoch, Float32 frames mapped (.npy)", lazy.Total, Working(mapped.MappedEpoch), "as above; file pages count in RSS");
        if (memory is not null)
        {
            long eager = MemoryEstimator.EagerWindowBytes(MemoryScenario.ScaledFrames, Row, DType.Float32, W, 1);
            Compare(report, $"Windows.Eager, {MemoryScenario.ScaledFrames:N0} frames", eager, memory.ScaledEagerRssBytes, "RSS growth while it built");
        }
        long fullEager = MemoryEstimator.EagerWindowBytes(F, Row, DType.Float32, W, 1);
        report.Line($"| Windows.Eager, {F:N0} frames | {MB(fullEager)} | not built | — | — |");
        WindowModeDecision decision = MemoryEstimator.ChooseWindowMode(WindowMode.Auto, fullEager, MemoryBudget.Current());
        report.Line("");
        report.Line($"WindowMode.Auto on this machine: {decision}");
    }

    private static long Working(MemoryScenario.LazyEpoch epoch) => epoch.PeakBytes - epoch.BaselineBytes;

    private static void Compare(Report report, string name, long estimate, long measured, string how) =>
        report.Line($"| {name} | {MB(estimate)} | {MB(measured)} | {(double)measured / estimate:F3} | {how} |");

    private static string MB(double bytes) => $"{bytes / 1e6:N1} MB";
}
