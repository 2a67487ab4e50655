using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Cases.CaseBytes;

namespace NativeTensor.Cases;

/// <summary>
/// One optimizer-step scenario: a weight of <see cref="Length"/> elements stepped <see cref="Steps"/> times on a device
/// with loss-scaled gradients of <see cref="Gradient"/>'s dtype, next to the double reference and the running error
/// bound of <see cref="StepErrorBound"/> (its per-operation accuracy from <c>Tolerances.OperationUlps</c>). <see cref="Run"/>
/// does the stepping and returns everything a test asserts on; <see cref="Judge"/> says where it leaves the bound.
/// </summary>
public sealed record StepCase(
    AdamWOptions? AdamW, SgdOptions? Sgd, DType Gradient, DType? Working, int Length, int Steps, double LossScale, int Seed) : IOpCase
{
    public string Op => $"optimizer-steps.{(AdamW is not null ? "adamw" : "sgd")}";

    public override string ToString() => Name;

    /// <summary>
    /// Per element and step: the weights and each Float32 state buffer read and written (8 bytes each), the gradient
    /// read, the working copy written. AdamW with BFloat16 gradient and working copy: 28 bytes.
    /// </summary>
    public long MovedBytes => (long)Length * Steps * ((AdamW is not null ? 24 : 16) + Gradient.SizeOf() + (Working?.SizeOf() ?? 0));

    public string Standard => "within the derived bound (StepErrorBound) of OptimizerStepsReference";

    /// <summary>The kernel's binary32 operations per element (<c>kernels/optimizer_steps.cl</c>), not counting the working copy's rounding.</summary>
    public long Flops => (long)Length * Steps * (AdamW is not null ? 16 : 8);

    /// <summary>Steps on <paramref name="device"/> and judges weights, state and working copy against the derived bound.</summary>
    public string? Check(Device device) => Judge(Run(device, device.Kind));
    public string Name => $"{(AdamW is not null ? $"AdamW {AdamW}" : $"SGD {Sgd}")}, {Gradient} grads -> {Working?.ToString() ?? "no"} working, " +
        $"{Length} elements x {Steps} steps, loss scale {LossScale}, seed {Seed}";

    /// <summary>What a device computed, the reference's values and the bound of each, all as doubles per element.</summary>
    public sealed record Outcome(float[] P, float[] First, float[] Second, byte[]? Working,
        double[] ExpectedP, double[] ExpectedFirst, double[] ExpectedSecond, Bounded[] BoundP, Bounded[] BoundFirst, Bounded[] BoundSecond);

    /// <summary>
    /// Unscaled gradient values spread over seven decades with exact zeros, stored loss-scaled in the gradient dtype;
    /// returns the stored bits and the exact unscaled values the reference and the bound see.
    /// </summary>
    private (byte[] Bits, double[] Exact) Gradients(Random random, float inverseScale)
    {
        int size = Gradient.SizeOf();
        var bits = new byte[Length * size];
        var exact = new double[Length];
        for (int i = 0; i < Length; i++)
        {
            double unscaled = random.Next(16) == 0 ? 0 : (random.Next(2) == 0 ? -1 : 1) * Math.Pow(10, -6 + 6 * random.NextDouble());
            uint single = BitConverter.SingleToUInt32Bits((float)(unscaled * LossScale));
            ulong stored = PrecisionReference.Convert(single, DType.Float32, Gradient);
            BitConverter.GetBytes(stored).AsSpan(0, size).CopyTo(bits.AsSpan(i * size));
            exact[i] = BitConverter.UInt32BitsToSingle((uint)PrecisionReference.Convert(stored, Gradient, DType.Float32)) * (double)inverseScale;
        }
        return (bits, exact);
    }

    public Outcome Run(Device device, DeviceKind accuracyOf)
    {
        var random = new Random(Seed);
        float inverseScale = (float)(1 / LossScale);
        float[] initial = [.. Enumerable.Range(0, Length).Select(_ => (float)(random.NextDouble() * 4 - 2))];
        var bound = new StepErrorBound(Tolerances.OperationUlps(AdamW is not null ? "adamw" : "sgd", accuracyOf));
        double[] p = [.. initial.Select(x => (double)x)], first = new double[Length], second = new double[Length];
        Bounded[] bp = [.. initial.Select(x => StepErrorBound.Exactly(x))];
        Bounded[] bFirst = new Bounded[Length], bSecond = new Bounded[Length];
        long[] shape = [Length];
        using Tensor parameters = OnDevice(initial, shape, device);
        using Tensor firstState = Tensor.Zeros(DType.Float32, shape, device);
        using Tensor secondState = Tensor.Zeros(DType.Float32, shape, device);
        using Tensor? working = Working is { } w ? Poisoned(w, shape, device) : null;
        for (int t = 1; t <= Steps; t++)
        {
            (byte[] bits, double[] exact) = Gradients(random, inverseScale);
            using Tensor gradient = FromBytes(Gradient, shape, device, bits);
            if (AdamW is not null)
            {
                OptimizerSteps.AdamW(parameters, gradient, firstState, secondState, AdamW, t, inverseScale, working);
                OptimizerStepsReference.AdamW(p, first, second, exact, AdamW, t);
                for (int i = 0; i < Length; i++)
                    (bp[i], bFirst[i], bSecond[i]) = bound.AdamW(bp[i], bFirst[i], bSecond[i], exact[i], 1, AdamW, t);
            }
            else
            {
                OptimizerSteps.Sgd(parameters, gradient, firstState, Sgd!, t == 1, inverseScale, working);
                OptimizerStepsReference.Sgd(p, first, exact, Sgd!, t == 1);
                for (int i = 0; i < Length; i++)
                    (bp[i], bFirst[i]) = bound.Sgd(bp[i], bFirst[i], exact[i], 1, Sgd!, t == 1);
            }
        }
        return new Outcome(parameters.ToArray<float>(), firstState.ToArray<float>(), secondState.ToArray<float>(),
            working is null ? null : Bytes(working), p, first, second, bp, bFirst, bSecond);
    }

    /// <summary>
    /// Null when each computed value is within its derived bound of the reference, the bound's own exact channel agrees
    /// with the reference (so both model one formula) and the bound is finite and informative, and the working copy is
    /// the new master rounded exactly as <see cref="Precision.Convert"/> rounds; otherwise the first place it is not.
    /// </summary>
    public string? Judge(Outcome o)
    {
        string? failure = Within("parameters", o.P, o.ExpectedP, o.BoundP)
            ?? Within(AdamW is not null ? "first moment" : "momentum buffer", o.First, o.ExpectedFirst, o.BoundFirst)
            ?? (AdamW is not null ? Within("second moment", o.Second, o.ExpectedSecond, o.BoundSecond) : null);
        if (failure is not null || o.Working is not { } working) return failure;
        int size = Working!.Value.SizeOf();
        for (int i = 0; i < Length; i++)
        {
            ulong expected = PrecisionReference.Convert(BitConverter.SingleToUInt32Bits(o.P[i]), DType.Float32, Working.Value);
            ulong actual = size == 2 ? BitConverter.ToUInt16(working, i * 2) : BitConverter.ToUInt32(working, i * 4);
            if (expected != actual) return $"working[{i}] = 0x{actual:X} but the new master {o.P[i]:R} rounds to 0x{expected:X}";
        }
        return null;
    }

    private static string? Within(string what, float[] actual, double[] expected, Bounded[] bound)
    {
        // The bound is informative when it is small beside the value or beside the array's typical magnitude (a weight
        // that crosses zero keeps the error it accumulated while it was large).
        double scale = expected.Length == 0 ? 0 : Math.Sqrt(expected.Average(x => x * x));
        for (int i = 0; i < actual.Length; i++)
        {
            double error = bound[i].Error;
            if (!double.IsFinite(error) || error > 1e-3 * (Math.Abs(expected[i]) + scale) + 1e-30)
                return $"the derived bound on {what}[{i}] is {error:R} for a value of {expected[i]:R}: the case tests nothing there";
            // The two compute in different double orders: agree to 1e-12 of the array's scale, not of a value near 0.
            if (Math.Abs(bound[i].Exact - expected[i]) > 1e-12 * (Math.Abs(expected[i]) + scale) + 1e-30)
                return $"the bound models {bound[i].Exact:R} but the reference computes {expected[i]:R} for {what}[{i}]";
            if (!(Math.Abs(actual[i] - expected[i]) <= error))
                return $"{what}[{i}] = {actual[i]:R}, reference {expected[i]:R}: off by {Math.Abs(actual[i] - expected[i]):R}, derived bound {error:R}";
        }
        return null;
    }

    /// <summary>
    /// Null when <paramref name="device"/> gives exactly the bits of <paramref name="reference"/> (the CPU's scalar kernel,
    /// which follows the documented binary32 sequence one element at a time) for weights, state and working copy: what a
    /// backend whose divide and sqrt round correctly must do.
    /// </summary>
    public string? BitsDiffer(Device reference, Device device)
    {
        Outcome expected = Run(reference, reference.Kind), actual = Run(device, device.Kind);
        (string What, float[] Want, float[] Got)[] states = [("parameters", expected.P, actual.P), ("first", expected.First, actual.First), ("second", expected.Second, actual.Second)];
        foreach ((string what, float[] want, float[] got) in states)
            if (Differs(AsBytes(want), AsBytes(got), what, sizeof(float)) is { } failure) return failure;
        return expected.Working is null && actual.Working is null ? null
            : Differs(expected.Working ?? [], actual.Working ?? [], "working copy", Working?.SizeOf() ?? 1);
    }

    private static byte[] AsBytes(float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    /// <summary>
    /// The weights, state, working copy and the first step's gradient on the device; each run is one more step
    /// (t counts up, so AdamW's bias corrections are those of a long run). The default options' small learning rates
    /// keep the weights near their start over the hundreds of steps perf times.
    /// </summary>
    public PreparedCase Prepare(Device device)
    {
        var random = new Random(Seed);
        float inverseScale = (float)(1 / LossScale);
        float[] initial = [.. Enumerable.Range(0, Length).Select(_ => (float)(random.NextDouble() * 4 - 2))];
        long[] shape = [Length];
        Tensor parameters = OnDevice(initial, shape, device);
        Tensor first = Tensor.Zeros(DType.Float32, shape, device), second = Tensor.Zeros(DType.Float32, shape, device);
        Tensor? working = Working is { } w ? Tensor.Zeros(w, shape, device) : null;
        Tensor gradient = FromBytes(Gradient, shape, device, Gradients(random, inverseScale).Bits);
        long t = 0;
        Action run = AdamW is not null
            ? () => OptimizerSteps.AdamW(parameters, gradient, first, second, AdamW, ++t, inverseScale, working)
            : () => OptimizerSteps.Sgd(parameters, gradient, first, Sgd!, ++t == 1, inverseScale, working);
        return new PreparedCase(run, parameters, first, second, working, gradient);
    }
}
