using System.Runtime.InteropServices;
using NativeTensor.Reference;

namespace NativeTensor.Perf;

/// <summary>One Moments timing: GFLOP/s counts n d (d + 1), the multiply-adds of one triangle of X^T X, twice.</summary>
internal sealed record MomentsRow(string Op, string Backend, long Flops, Timing Time)
{
    public double Gflops => Flops / (Time.MedianMs * 1e6);
}

/// <summary>
/// <see cref="NativeTensor.Moments"/> on every device: first the shared <see cref="Cases.MomentsCase"/>s of
/// <see cref="PerfCases.Moments"/> (several groups, 16-bit dtypes, uneven batches, shards and merges, within the tests'
/// derived bounds of <see cref="MomentsReference"/>), then Update of a [4096, 1024] Float32 batch (mean 1e4, unit variance)
/// timed on every device (OpenCL and CUDA keep the batch on the device: column sums, centring, Syrk blocks and their
/// compensated accumulation all run there), beside NumPy's <c>np.cov</c> of the very same batch (and PyTorch's
/// <c>torch.cov</c> on a GPU). The error of the timed update against the reference at that size is printed too, with the
/// bytes a device update read back. Last, a small grouped batch beside its own Syrk (<see cref="SmallBatch"/>).
/// </summary>
internal static class Moments
{
    public const int Rows = 4096, Features = 1024;

    public static long Flops => (long)Rows * Features * (Features + 1);

    /// <summary>The timed update's row name, which the peers are compared with.</summary>
    public static readonly string UpdateOp = $"moments update [{Rows}, {Features}] f32";

    public static (List<MomentsRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report, bool quick)
    {
        report.Section($"Moments: Moments.Update of [{Rows}, {Features}] f32 (centre, Syrk in {NativeTensor.Moments.ScatterBlockRows}-row blocks, Chan merge)");
        float[] batch = Batch();
        // The reference at full size takes ~10 s: computed once, for the first device that asks, and shared.
        var expected = new Lazy<double[,]>(() => MomentsReference.Covariance([.. batch.Select(v => (double)v)], Features));
        (List<MomentsRow> rows, bool failed) = ValidatedTiming.Run(devices, report, PerfCases.Moments, device => Time(device, batch, expected, plan, report, quick));
        if (rows.Count > 0)
        {
            string file = Path.Combine(Directory.CreateTempSubdirectory("nativetensor-moments-").FullName, "batch.f32");
            try
            {
                File.WriteAllBytes(file, MemoryMarshal.AsBytes(batch.AsSpan()).ToArray());
                if (rows.Any(r => r.Backend == Device.Cpu.Spec)) rows.AddRange(Peers.NumpyMoments(file, plan, report));
                foreach (Device cuda in devices.Where(d => d.Kind == DeviceKind.Cuda && rows.Any(r => r.Backend == d.Spec)))
                    rows.AddRange(Peers.TorchMoments(cuda, file, plan, report));
            }
            finally
            {
                Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
            }
        }
        foreach (Device device in devices.Where(d => d.Kind != DeviceKind.OpenCl && rows.Any(r => r.Backend == d.Spec)))
            rows.AddRange(SmallBatch(device, plan, report));
        Print(rows, report);
        return (rows, failed);
    }

    /// <summary>
    /// The small grouped batch an activation-statistics tool feeds Update (64 prompts, 8 layers, hidden 512), interleaved
    /// with the Syrk it cannot avoid: one [64, 512] block per group into a [512, 512] scatter. Everything else an update
    /// does (column sums, centring, the correction, the merge into the Float64 state) should cost at most as much again.
    /// Not on OpenCL: PoCL runs the GEMM tiles at a few GFLOP/s, so there the Syrk hides everything.
    /// </summary>
    private static List<MomentsRow> SmallBatch(Device device, RunPlan plan, Report report)
    {
        const int n = 64, groups = 8, d = 512;
        var random = new Random(7);
        var values = new float[n * groups * d];
        for (int i = 0; i < values.Length; i++) values[i] = (float)Normal(random);
        using Tensor host = Tensor.FromArray(values, n, groups, d);
        using Tensor batch = host.To(device);
        using Tensor hostBlock = Tensor.FromArray(values[..(n * d)], n, d);
        using Tensor block = hostBlock.To(device);
        using Tensor scatter = Tensor.Empty(DType.Float32, [d, d], device);
        var state = new NativeTensor.Moments(d, groups, device);
        // Milliseconds a rep: enough reps for a median that a busy machine's spikes do not move.
        RunPlan many = plan with { Reps = Math.Max(plan.Reps, 40), WarmupReps = 5 };
        Timing[] t = Timer.Interleaved(device.Backend, many,
        [
            _ => state.Update(batch),
            _ =>
            {
                for (int g = 0; g < groups; g++) NativeTensor.Linalg.Syrk(block, c: scatter);
            },
        ]);
        double ratio = t[0].MedianMs / t[1].MedianMs;
        Targets.Say(report, $"{device.Spec} moments: Update of a small grouped batch [{n}, {groups}, {d}] within {SmallBatchOverSyrk}x of its Syrk time ({groups} x [{n}, {d}])",
            SmallBatchOverSyrk / ratio, 1, $"{t[0].MedianMs:F2} / {t[1].MedianMs:F2} ms = {ratio:F2}x");
        long flops = (long)groups * n * d * (d + 1);
        return
        [
            new MomentsRow($"moments update [{n}, {groups}, {d}] f32", device.Spec, flops, t[0]),
            new MomentsRow($"its Syrk: {groups} x [{n}, {d}] f32", device.Spec, flops, t[1]),
        ];
    }

    /// <summary>The most a small batch's update may take, in multiples of its Syrk's time.</summary>
    private const double SmallBatchOverSyrk = 2;

    /// <summary>Rows of N(1e4, 1) with a shared component, seeded: the stability regime the issue asks about.</summary>
    private static float[] Batch()
    {
        var random = new Random(42);
        var values = new float[Rows * Features];
        for (int i = 0; i < Rows; i++)
        {
            double shared = Normal(random);
            for (int j = 0; j < Features; j++) values[i * Features + j] = (float)(1e4 + (Normal(random) + shared / 2) / Math.Sqrt(1.25));
        }
        return values;
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static List<MomentsRow> Time(Device device, float[] values, Lazy<double[,]> expected, RunPlan plan, Report report, bool quick)
    {
        using Tensor host = Tensor.FromArray(values, Rows, Features);
        using Tensor batch = host.To(device);
        var state = new NativeTensor.Moments(Features, device: device);
        // A batch is 17 MB and tens of milliseconds: a short plan; a warm-up of one batch builds kernels and tiers the JIT.
        RunPlan few = plan with { WarmupReps = 1, WarmupMilliseconds = 0, Reps = quick ? 3 : 15 };
        Timing timing = Timer.Interleaved(device.Backend, few, [_ => state.Update(batch)])[0];
        if (quick) report.Line($"error at [{Rows}, {Features}] vs MomentsReference: skipped in --quick (the reference takes ~10 s)");
        else
        {
            var fresh = new NativeTensor.Moments(Features, device: device);
            fresh.Update(batch);
            string moved = device.Kind == DeviceKind.Cpu ? "" : $"; {fresh.BytesReadBack:N0} bytes read back from the device";
            report.Line($"error at [{Rows}, {Features}], mean 1e4, unit variance, {device.Spec}: covariance max-norm relative " +
                $"{MomentsReference.MaxNormRelative(fresh.Covariance(), expected.Value):E2} vs MomentsReference (target < 1e-5){moved}");
        }
        return [new MomentsRow(UpdateOp, device.Spec, Flops, timing)];
    }

    private static void Print(IReadOnlyList<MomentsRow> rows, Report report)
    {
        if (rows.Count == 0) return;
        var cells = new List<string[]> { new[] { "op", "backend", "median ms (min–max)", "GFLOP/s" } };
        foreach (MomentsRow row in rows)
            cells.Add([row.Op, row.Backend, $"{row.Time.MedianMs:F1} ({row.Time.MinMs:F1}–{row.Time.MaxMs:F1})", $"{row.Gflops:F2}"]);
        report.Table(cells, [false, false, true, true]);
        report.Line($"GFLOP/s = n d (d + 1) / time, the multiply-adds of one triangle of X^T X (x2), for ours and the peers alike.");
    }
}
