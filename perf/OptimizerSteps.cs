using NativeTensor.Cases;
using NativeTensor.Runtime;

namespace NativeTensor.Perf;

/// <summary>
/// The fused optimizer steps on every device: first the shared <see cref="StepCase"/>s of <see cref="PerfCases.OptimizerSteps"/>
/// (within the derived bound of the double reference, and bit for bit with the CPU's scalar kernel where divide and
/// sqrt round correctly), then the timed cases in place beside a copy of the same number of bytes on the same device. GB/s counts bytes read + written: AdamW with BFloat16 gradients
/// and a BFloat16 working copy reads weights, gradient and both moments (14 bytes/element) and writes weights, moments
/// and the copy (14), so a copy of 14 bytes/element moves exactly as much and is the ceiling. The whole
/// <c>MixedPrecisionOptimizer.Step</c> adds the read-only non-finite check of the gradient (2 more bytes/element).
/// </summary>
internal static class OptimizerSteps
{
    private const long Elements = PerfCases.StepElements;

    /// <summary>Bytes/element: (op, read + written); the first three are <see cref="PerfCases.TimedSteps"/>. The copy rows move the same totals.</summary>
    private static readonly (string Op, int Bytes)[] Ops =
    [
        ("adamw: bf16 grad -> bf16 working", 28),
        ("adamw: f32 grad, no working", 28),
        ("sgd momentum: f16 grad -> f16 working", 20),
        ("optimizer step: check + adamw, bf16", 30),
    ];

    public static string CopyOp(int bytesPerElement) => $"copy: Backend.Copy, {bytesPerElement} bytes/element";

    public static (List<ConversionRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        report.Section("Optimizer steps: NativeTensor.OptimizerSteps.AdamW / Sgd, MixedPrecisionOptimizer.Step");
        (List<ConversionRow> rows, bool failed) = ValidatedTiming.Run(devices, report, PerfCases.OptimizerSteps, device => Time(device, plan));
        // PyTorch on the same GPU, in this table; the targets compare its unscale rows with the Unscale section's.
        foreach (Device cuda in devices.Where(d => d.Kind == DeviceKind.Cuda && rows.Any(r => r.Backend == d.Spec)))
            rows.AddRange(Peers.TorchMixedPrecision(cuda, Elements, plan, report));
        Print(rows, report);
        return (rows, failed);
    }

    private static List<ConversionRow> Time(Device device, RunPlan plan)
    {
        Backend backend = device.Backend;
        // Every buffer is written first: a never-touched one would be read from the kernel's shared zero page.
        using Tensor p = Filled(DType.Float32, device, 1);
        using Tensor gBf16 = Filled(DType.BFloat16, device, 1e-3);
        using Tensor copyFrom = Tensor.Zeros(DType.Float32, [Elements * 15 / 2], device);
        using Tensor copyTo = Tensor.Zeros(DType.Float32, [Elements * 15 / 2], device);
        using var optimizer = new Training.MixedPrecisionOptimizer([p], DType.BFloat16, new AdamWOptions());
        var ops = new List<(string Op, long Moved, Action<int> Body)>();
        foreach (int bytes in Ops.Select(o => o.Bytes).Distinct())
        {
            long half = Elements * bytes / 2;
            ops.Add((CopyOp(bytes), 2 * half, _ => backend.Copy(copyFrom.Buffer, 0, copyTo.Buffer, 0, half)));
        }
        var prepared = new List<PreparedCase>();
        try
        {
            for (int k = 0; k < PerfCases.TimedSteps.Length; k++)
            {
                StepCase timed = PerfCases.TimedSteps[k];
                PreparedCase run = timed.Prepare(device);
                prepared.Add(run);
                if (timed.MovedBytes != Elements * Ops[k].Bytes) throw new InvalidOperationException($"{Ops[k].Op}: the case moves {timed.MovedBytes} bytes, the table says {Elements * Ops[k].Bytes}");
                ops.Add((Ops[k].Op, timed.MovedBytes, _ => run.Run()));
            }
            ops.Add((Ops[3].Op, Elements * Ops[3].Bytes, _ =>
            {
                if (!optimizer.Step([gBf16])) throw new InvalidOperationException("a finite gradient was skipped");
            }));
            Timing[] timings = Timer.Interleaved(backend, plan with { Reps = Math.Min(plan.Reps, 20) }, ops.Select(o => o.Body).ToArray());
            return ops.Select((o, k) => new ConversionRow(o.Op, device.Spec, o.Moved, timings[k])).ToList();
        }
        finally
        {
            foreach (PreparedCase run in prepared) run.Dispose();
        }
    }

    /// <summary>Finite values of magnitude up to <paramref name="magnitude"/>, converted to <paramref name="dtype"/>.</summary>
    private static Tensor Filled(DType dtype, Device device, double magnitude)
    {
        var random = new Random(11);
        var values = new float[Elements];
        for (long i = 0; i < values.LongLength; i++) values[i] = (float)((random.NextDouble() * 2 - 1) * magnitude);
        using Tensor single = Tensor.FromArray(values);
        using Tensor typed = NativeTensor.Precision.Convert(single, dtype);
        return typed.To(device);
    }

    private static void Print(IReadOnlyList<ConversionRow> rows, Report report)
    {
        CopyTable.Print(rows, Elements, report);
        report.Line("GB/s = bytes read + written by the step (weights, gradient, state, working copy); each step's copy row moves the same total.");
        report.Line("The optimizer-step row is MixedPrecisionOptimizer.Step: the read-only non-finite check of the gradient, then the fused AdamW pass.");
    }
}
