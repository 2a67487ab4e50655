using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using NativeTensor.Training;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Training;

/// <summary>
/// <see cref="MixedPrecisionOptimizer"/> on each backend: a training run of many steps with a dynamic loss scale and
/// injected overflows follows the double reference (skipping exactly the overflowed steps) within the derived bound,
/// and a skipped step leaves every byte and the step count alone while the scale backs off.
/// </summary>
public abstract class MixedPrecisionOptimizerParityTests
{
    protected abstract Device Device { get; }

    /// <summary>
    /// Two weights (a [7, 37] matrix and a bias of 5), 400 steps of loss-scaled gradients in the working dtype, an Inf
    /// or NaN planted every 37th step: the applied steps equal the reference's within <see cref="StepErrorBound"/>.
    /// </summary>
    [Theory]
    [InlineData(true, DType.Float16)]
    [InlineData(true, DType.BFloat16)]
    [InlineData(false, DType.BFloat16)]
    [InlineData(true, DType.Float32)]
    public void A_scaled_run_with_overflows_follows_the_double_reference(bool adamW, DType working)
    {
        Device device = Device;
        var random = new Random(working.GetHashCode() + (adamW ? 1 : 0));
        var adamWOptions = new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.05 };
        var sgdOptions = new SgdOptions { LearningRate = 1e-2, Nesterov = true, WeightDecay = 1e-3 };
        long[][] shapes = [[7, 37], [5]];
        float[][] initial = [.. shapes.Select(s => Enumerable.Range(0, (int)s.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray())];
        Tensor[] masters = [.. initial.Select((x, k) => OnDevice(x, shapes[k], device))];
        DType gradientType = working == DType.Float32 ? DType.Float16 : working;
        float initialScale = gradientType == DType.Float16 ? 1024 : 65536;
        var scaler = new DynamicLossScaler(initialScale, growthInterval: 25);
        var bound = new StepErrorBound(Tolerances.OperationUlps(adamW ? "adamw" : "sgd", device.Kind));
        double[][] p = [.. initial.Select(x => x.Select(v => (double)v).ToArray())];
        double[][] first = [.. initial.Select(x => new double[x.Length])], second = [.. initial.Select(x => new double[x.Length])];
        Bounded[][] bp = [.. initial.Select(x => x.Select(v => StepErrorBound.Exactly(v)).ToArray())];
        Bounded[][] bFirst = [.. initial.Select(x => new Bounded[x.Length])], bSecond = [.. initial.Select(x => new Bounded[x.Length])];
        long applied = 0;
        try
        {
            using var optimizer = adamW
                ? new MixedPrecisionOptimizer(masters, working, adamWOptions, scaler)
                : new MixedPrecisionOptimizer(masters, working, sgdOptions, scaler);
            for (int step = 1; step <= 400; step++)
            {
                float scale = scaler.Scale;
                float inverse = scaler.InverseScale;
                bool overflow = step % 37 == 0;
                var exact = new double[masters.Length][];
                Tensor[] gradients = new Tensor[masters.Length];
                for (int k = 0; k < masters.Length; k++)
                {
                    int n = initial[k].Length;
                    var bits = new byte[n * gradientType.SizeOf()];
                    exact[k] = new double[n];
                    for (int i = 0; i < n; i++)
                    {
                        double unscaled = (random.Next(2) == 0 ? -1 : 1) * Math.Pow(10, -5 + 5 * random.NextDouble());
                        ulong stored = PrecisionReference.Convert(BitConverter.SingleToUInt32Bits((float)(unscaled * scale)), DType.Float32, gradientType);
                        if (overflow && k == 1 && i == step % n) stored = step % 2 == 0 ? Infinity(gradientType) : 0x7FFFu;   // ±Inf or a NaN
                        BitConverter.GetBytes(stored).AsSpan(0, gradientType.SizeOf()).CopyTo(bits.AsSpan(i * gradientType.SizeOf()));
                        exact[k][i] = BitConverter.UInt32BitsToSingle((uint)PrecisionReference.Convert(stored, gradientType, DType.Float32)) * (double)inverse;
                    }
                    gradients[k] = FromBytes(gradientType, shapes[k], device, bits);
                }
                byte[][] before = [.. masters.Select(Bytes)];
                byte[][] workingBefore = [.. optimizer.WorkingWeights.Select(Bytes)];
                bool stepped;
                try
                {
                    stepped = optimizer.Step(gradients);
                }
                finally
                {
                    foreach (Tensor g in gradients) g.Dispose();
                }
                Assert.Equal(!overflow, stepped);
                if (!stepped)
                {
                    Assert.Equal(scale / 2, scaler.Scale);
                    for (int k = 0; k < masters.Length; k++)
                    {
                        BitExact(before[k], Bytes(masters[k]), $"step {step} was skipped but weight {k} changed");
                        BitExact(workingBefore[k], Bytes(optimizer.WorkingWeights[k]), $"step {step} was skipped but working weight {k} changed");
                    }
                    continue;
                }
                applied++;
                for (int k = 0; k < masters.Length; k++)
                {
                    if (adamW)
                    {
                        OptimizerStepsReference.AdamW(p[k], first[k], second[k], exact[k], adamWOptions, applied);
                        for (int i = 0; i < p[k].Length; i++)
                            (bp[k][i], bFirst[k][i], bSecond[k][i]) = bound.AdamW(bp[k][i], bFirst[k][i], bSecond[k][i], exact[k][i], 1, adamWOptions, applied);
                    }
                    else
                    {
                        OptimizerStepsReference.Sgd(p[k], first[k], exact[k], sgdOptions, applied == 1);
                        for (int i = 0; i < p[k].Length; i++)
                            (bp[k][i], bFirst[k][i]) = bound.Sgd(bp[k][i], bFirst[k][i], exact[k][i], 1, sgdOptions, applied == 1);
                    }
                }
            }
            Assert.Equal(applied, optimizer.StepCount);
            Assert.Equal(400 - applied, optimizer.SkippedSteps);
            Assert.True(scaler.Scale > initialScale, "the scale should have grown between overflows");
            for (int k = 0; k < masters.Length; k++)
            {
                float[] actual = masters[k].ToArray<float>();
                for (int i = 0; i < actual.Length; i++)
                    Assert.True(Math.Abs(actual[i] - p[k][i]) <= bp[k][i].Error,
                        $"weight {k}[{i}] = {actual[i]:R}, reference {p[k][i]:R}, derived bound {bp[k][i].Error:R}");
                if (working != DType.Float32)
                    BitExact(Bytes(Precision.Convert(masters[k], working)), Bytes(optimizer.WorkingWeights[k]), $"working copy {k}");
                else
                    Assert.Same(masters[k], optimizer.WorkingWeights[k]);
            }
        }
        finally
        {
            foreach (Tensor m in masters) m.Dispose();
        }
    }

    private static ulong Infinity(DType dtype) => dtype == DType.Float16 ? 0xFC00u : 0xFF80u;

    [Fact]
    public void Dispose_frees_what_the_optimizer_allocated_and_leaves_the_masters()
    {
        Device device = Device;
        long before = device.Backend.LiveBuffers;
        using Tensor master = OnDevice(new float[1000], [10, 100], device);
        var optimizer = new MixedPrecisionOptimizer([master], DType.BFloat16, new AdamWOptions());
        Assert.Equal(before + 4, device.Backend.LiveBuffers);   // the master, its working copy, two moments
        optimizer.Dispose();
        optimizer.Dispose();
        Assert.Equal(before + 1, device.Backend.LiveBuffers);
        Assert.False(master.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => optimizer.Step([master]));
    }
}

public sealed class CpuMixedPrecisionOptimizerTests : MixedPrecisionOptimizerParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class OpenClMixedPrecisionOptimizerTests : MixedPrecisionOptimizerParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);
}

public sealed class CudaMixedPrecisionOptimizerTests : MixedPrecisionOptimizerParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}

/// <summary>Every rule of the constructor and of <see cref="MixedPrecisionOptimizer.Step"/>: refused before anything changes.</summary>
public sealed class MixedPrecisionOptimizerRulesTests
{
    [Fact]
    public void Construction_refuses_bad_master_weights_and_options()
    {
        using Tensor a = Tensor.FromArray(new float[6], 2, 3);
        using Tensor half = Tensor.Zeros(DType.Float16, [6]);
        using Tensor elsewhere = Tensor.Zeros(DType.Float32, [6], Backends.CpuScalar);
        var options = new AdamWOptions();
        Assert.Throws<ArgumentNullException>(() => new MixedPrecisionOptimizer(null!, DType.BFloat16, options));
        Assert.Throws<ArgumentNullException>(() => new MixedPrecisionOptimizer([a], DType.BFloat16, (AdamWOptions)null!));
        Assert.Throws<ArgumentNullException>(() => new MixedPrecisionOptimizer([a, null!], DType.BFloat16, options));
        Assert.Throws<ArgumentException>(() => new MixedPrecisionOptimizer([half], DType.BFloat16, options));
        Assert.Throws<ArgumentException>(() => new MixedPrecisionOptimizer([a, a], DType.BFloat16, options));
        Assert.Throws<ArgumentException>(() => new MixedPrecisionOptimizer([a, elsewhere], DType.BFloat16, options));
        Assert.Throws<ArgumentException>(() => new MixedPrecisionOptimizer([a], DType.Int32, options));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MixedPrecisionOptimizer([a], DType.BFloat16, options with { Beta2 = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MixedPrecisionOptimizer([a], DType.Float16, new SgdOptions { Momentum = 0 }));
        // Valid in double, but lr / (1 - beta1) overflows float: refused at construction, not at the first Step.
        Assert.Throws<ArgumentOutOfRangeException>(() => new MixedPrecisionOptimizer([a], DType.BFloat16, options with { LearningRate = 1e300, WeightDecay = 0 }));
        a.Dispose();
        Assert.Throws<ObjectDisposedException>(() => new MixedPrecisionOptimizer([a], DType.BFloat16, options));
    }

    [Theory]
    [InlineData("master")]
    [InlineData("working")]
    public void A_disposed_weight_is_refused_before_the_scaler_or_any_weight_changes(string which)
    {
        using Tensor w1 = Tensor.FromArray([1f, 2f, 3f], 3);
        using Tensor w2 = Tensor.FromArray([0.5f, -0.5f], 2);
        var scaler = new DynamicLossScaler(initialScale: 256, growthInterval: 1);
        using var optimizer = new MixedPrecisionOptimizer([w1, w2], DType.Float16, new AdamWOptions(), scaler);
        using Tensor g1 = Tensor.Zeros(DType.Float16, [3]);
        using Tensor g2 = Tensor.Zeros(DType.Float16, [2]);
        byte[] first = Bytes(w1), firstWorking = Bytes(optimizer.WorkingWeights[0]);
        (which == "master" ? w2 : optimizer.WorkingWeights[1]).Dispose();
        Assert.Throws<ObjectDisposedException>(() => optimizer.Step([g1, g2]));
        Assert.Equal(256f, scaler.Scale);
        Assert.Equal(0, scaler.GrowthTracker);
        BitExact(first, Bytes(w1), "weight 0");
        BitExact(firstWorking, Bytes(optimizer.WorkingWeights[0]), "working weight 0");
    }

    public static TheoryData<string, Type> StepRules() => new()
    {
        { "null list", typeof(ArgumentNullException) },
        { "null gradient", typeof(ArgumentNullException) },
        { "one gradient short", typeof(ArgumentException) },
        { "one gradient too many", typeof(ArgumentException) },
        { "shape mismatch", typeof(ArgumentException) },
        { "Int32 gradient", typeof(ArgumentException) },
        { "gradient on another device", typeof(ArgumentException) },
        { "gradient is a master weight", typeof(ArgumentException) },
        { "gradient is a working weight", typeof(ArgumentException) },
        { "disposed gradient", typeof(ObjectDisposedException) },
    };

    [Theory]
    [MemberData(nameof(StepRules))]
    public void Bad_gradients_are_refused_before_anything_changes(string rule, Type exception)
    {
        using Tensor w1 = Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        using Tensor w2 = Tensor.FromArray([0.5f, -0.5f], 2);
        var scaler = new DynamicLossScaler(initialScale: 256, growthInterval: 1);
        using var optimizer = new MixedPrecisionOptimizer([w1, w2], DType.BFloat16, new AdamWOptions(), scaler);
        using Tensor g1 = Tensor.Zeros(DType.BFloat16, [2, 3]);
        using Tensor g2 = Tensor.Zeros(DType.BFloat16, [2]);
        using Tensor flat = Tensor.Zeros(DType.BFloat16, [6]);
        using Tensor ints = Tensor.Zeros(DType.Int32, [2]);
        using Tensor elsewhere = Tensor.Zeros(DType.BFloat16, [2], Backends.CpuScalar);
        Tensor gone = Tensor.Zeros(DType.BFloat16, [2]);
        gone.Dispose();
        IReadOnlyList<Tensor> gradients = rule switch
        {
            "null list" => null!,
            "null gradient" => [g1, null!],
            "one gradient short" => [g1],
            "one gradient too many" => [g1, g2, g2],
            "shape mismatch" => [flat, g2],
            "Int32 gradient" => [g1, ints],
            "gradient on another device" => [g1, elsewhere],
            "gradient is a master weight" => [g1, w2],
            "gradient is a working weight" => [optimizer.WorkingWeights[0], g2],
            "disposed gradient" => [g1, gone],
            _ => throw new ArgumentException(rule),
        };
        byte[][] before = [.. new[] { w1, w2, optimizer.WorkingWeights[0], optimizer.WorkingWeights[1] }.Select(Bytes)];
        Assert.Throws(exception, () => optimizer.Step(gradients));
        Assert.Equal(256f, scaler.Scale);
        Assert.Equal(0, scaler.GrowthTracker);
        Assert.Equal(0, optimizer.StepCount + optimizer.SkippedSteps);
        Tensor[] after = [w1, w2, optimizer.WorkingWeights[0], optimizer.WorkingWeights[1]];
        for (int i = 0; i < after.Length; i++) BitExact(before[i], Bytes(after[i]), $"{rule}: tensor {i}");
    }

    [Fact]
    public void Working_weights_start_as_the_rounded_masters_and_float32_means_no_copy()
    {
        using Tensor w = Tensor.FromArray([1.00001f, -3.14159f, 65519f, 1e-8f], 4);
        using var half = new MixedPrecisionOptimizer([w], DType.Float16, new SgdOptions());
        Assert.Equal(DType.Float16, half.WorkingWeights[0].DType);
        BitExact(Bytes(Precision.Convert(w, DType.Float16)), Bytes(half.WorkingWeights[0]), "initial Float16 copy");
        using var single = new MixedPrecisionOptimizer([w], DType.Float32, new SgdOptions());
        Assert.Same(w, single.WorkingWeights[0]);
        Assert.False(single.Scaler.IsEnabled);
    }

    [Fact]
    public void Without_a_scaler_a_non_finite_step_is_still_skipped()
    {
        using Tensor w = Tensor.FromArray([1f, 2f], 2);
        using var optimizer = new MixedPrecisionOptimizer([w], DType.BFloat16, new AdamWOptions());
        using Tensor nan = Tensor.FromArray([0.5f, float.NaN], 2);
        Assert.False(optimizer.Step([nan]));
        Assert.Equal([1f, 2f], w.ToArray<float>());
        using Tensor fine = Tensor.FromArray([0.5f, -0.5f], 2);
        Assert.True(optimizer.Step([fine]));
        Assert.Equal(1, optimizer.StepCount);
        Assert.Equal(1, optimizer.SkippedSteps);
    }
}
