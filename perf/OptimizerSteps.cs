using NativeTensor.Runtime;

namespace NativeTensor.Perf;

/// <summary>
/// The fused optimizer steps on every device: first checked bit for bit against the CPU's scalar kernel (the documented
/// binary32 sequence, which the tests tie to the double reference by a derived bound), then timed in place beside a
/// copy of the same number of bytes on the same device. GB/s counts bytes read + written: AdamW with BFloat16 gradients
/// and a BFloat16 working copy reads weights, gradient and both moments (14 bytes/element) and writes weights, moments
/// and the copy (14), so a copy of 14 bytes/element moves exactly as much and is the ceiling. The whole
/// <c>MixedPrecisionOptimizer.Step</c> adds the read-only non-finite check of the gradient (2 more bytes/element).
/// </summary>
internal static class OptimizerSteps
{
    /// <summary>Elements per timed weight: 64 MB of Float32 weights, 256 MB touched per AdamW step.</summary>
    private const long Elements = 16L << 20;

    /// <summary>Bytes/element: (op, read + written). The copy rows move the same totals.</summary>
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
        (List<ConversionRow> rows, bool failed) = ValidatedTiming.Run(devices, report, "optimizer steps, adamw + sgd",
            "(9 dtype pairs each, 3 steps of 4099 elements, bit-exact vs the cpu scalar kernel where divide and sqrt round correctly)", Validate, device => Time(device, plan));
        // PyTorch on the same GPU, in this table; the targets compare its unscale rows with the Unscale section's.
        foreach (Device cuda in devices.Where(d => d.Kind == DeviceKind.Cuda && rows.Any(r => r.Backend == d.Spec)))
            rows.AddRange(Peers.TorchMixedPrecision(cuda, Elements, plan, report));
        Print(rows, report);
        return (rows, failed);
    }

    /// <summary>Same inputs on the device and on the scalar CPU kernel; every output bit must agree.</summary>
    private static string? Validate(Device device)
    {
        if (device.Backend is Runtime.OpenCl.OpenClBackend { RoundsDivideAndSqrtCorrectly: false })
            return null;   // 2.5-ulp divide and 3-ulp sqrt are allowed there; the test suite bounds them instead
        var scalar = new Device(new Runtime.Cpu.CpuBackend(Cpu.SimdWidth.Scalar), 0);
        DType[] floats = [DType.Float32, DType.Float16, DType.BFloat16];
        foreach (bool adamW in new[] { true, false })
            foreach (DType gradient in floats)
                foreach (DType working in floats)
                {
                    byte[][] expected = Steps(scalar, adamW, gradient, working), actual = Steps(device, adamW, gradient, working);
                    for (int k = 0; k < expected.Length; k++)
                    {
                        int at = expected[k].AsSpan().CommonPrefixLength(actual[k]);
                        if (at != expected[k].Length)
                            return $"{(adamW ? "adamw" : "sgd")} {gradient} -> {working}: output {k} differs at byte {at}";
                    }
                }
        return null;
    }

    /// <summary>Three steps of 4099 elements from seeded inputs; the bytes of weights, state and working copy.</summary>
    private static byte[][] Steps(Device device, bool adamW, DType gradientType, DType working)
    {
        const int n = 4099;
        var random = new Random(3);
        float[] initial = [.. Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        using Tensor host = Tensor.FromArray(initial);
        using Tensor p = host.To(device);
        using Tensor m = Tensor.Zeros(DType.Float32, [n], device);
        using Tensor v = Tensor.Zeros(DType.Float32, [n], device);
        using Tensor? w = working == DType.Float32 ? null : Tensor.Zeros(working, [n], device);
        for (int t = 1; t <= 3; t++)
        {
            float[] values = [.. Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() - 0.5) * 1024))];
            using Tensor single = Tensor.FromArray(values);
            using Tensor typed = NativeTensor.Precision.Convert(single, gradientType);
            using Tensor g = typed.To(device);
            if (adamW) NativeTensor.OptimizerSteps.AdamW(p, g, m, v, new AdamWOptions(), t, 1f / 1024, w);
            else NativeTensor.OptimizerSteps.Sgd(p, g, m, new SgdOptions { Nesterov = t == 2, WeightDecay = 1e-3 }, t == 1, 1f / 1024, w);
        }
        Tensor?[] outputs = [p, m, adamW ? v : null, w];
        return [.. outputs.Where(o => o is not null).Select(o => Bytes(o!))];
    }

    private static byte[] Bytes(Tensor tensor)
    {
        using Tensor back = tensor.To(Device.Cpu);
        return Tensor.CpuBytes(back.Buffer, back.ByteCount).ToArray();
    }

    private static List<ConversionRow> Time(Device device, RunPlan plan)
    {
        Backend backend = device.Backend;
        long[] shape = [Elements];
        // Every buffer is written first: a never-touched one would be read from the kernel's shared zero page.
        using Tensor p = Filled(DType.Float32, device, 1);
        using Tensor m = Filled(DType.Float32, device, 1e-3);
        using Tensor v = Filled(DType.Float32, device, 1e-6);
        using Tensor gBf16 = Filled(DType.BFloat16, device, 1e-3);
        using Tensor gHalf = Filled(DType.Float16, device, 1e-3);
        using Tensor gSingle = Filled(DType.Float32, device, 1e-3);
        using Tensor wBf16 = Tensor.Zeros(DType.BFloat16, shape, device);
        using Tensor wHalf = Tensor.Zeros(DType.Float16, shape, device);
        using Tensor copyFrom = Tensor.Zeros(DType.Float32, [Elements * 15 / 2], device);
        using Tensor copyTo = Tensor.Zeros(DType.Float32, [Elements * 15 / 2], device);
        using var optimizer = new Training.MixedPrecisionOptimizer([p], DType.BFloat16, new AdamWOptions());
        var adamW = new AdamWOptions();
        var sgd = new SgdOptions();
        long step = 0;
        var ops = new List<(string Op, long Moved, Action<int> Body)>();
        foreach (int bytes in Ops.Select(o => o.Bytes).Distinct())
        {
            long half = Elements * bytes / 2;
            ops.Add((CopyOp(bytes), 2 * half, _ => backend.Copy(copyFrom.Buffer, 0, copyTo.Buffer, 0, half)));
        }
        // Small learning rates and gradients keep the weights near their start over hundreds of timed steps.
        ops.Add((Ops[0].Op, Elements * Ops[0].Bytes, _ => NativeTensor.OptimizerSteps.AdamW(p, gBf16, m, v, adamW, ++step, 1, wBf16)));
        ops.Add((Ops[1].Op, Elements * Ops[1].Bytes, _ => NativeTensor.OptimizerSteps.AdamW(p, gSingle, m, v, adamW, ++step, 1)));
        ops.Add((Ops[2].Op, Elements * Ops[2].Bytes, _ => NativeTensor.OptimizerSteps.Sgd(p, gHalf, m, sgd, false, 1, wHalf)));
        ops.Add((Ops[3].Op, Elements * Ops[3].Bytes, _ =>
        {
            if (!optimizer.Step([gBf16])) throw new InvalidOperationException("a finite gradient was skipped");
        }));
        Timing[] timings = Timer.Interleaved(backend, plan with { Reps = Math.Min(plan.Reps, 20) }, ops.Select(o => o.Body).ToArray());
        return ops.Select((o, k) => new ConversionRow(o.Op, device.Spec, o.Moved, timings[k])).ToList();
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
