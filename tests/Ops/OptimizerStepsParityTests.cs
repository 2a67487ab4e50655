using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Runtime;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What every backend must do for <see cref="OptimizerSteps"/>: over many steps, stay within the derived error bound of
/// the double reference (<see cref="StepErrorBound"/>) for weights and state, write the working copy as the exact
/// rounding of the new weights, give the same bits as the CPU's scalar kernel where the backend's arithmetic is
/// correctly rounded, touch nothing past the tensors, and find NaN/±Inf for <see cref="Precision.FindNonFinite"/>.
/// </summary>
public abstract class OptimizerStepsParityTests
{
    protected abstract Device Device { get; }

    protected virtual int PropertyRuns => 40;

    /// <summary>Whether this backend's divide and sqrt round correctly, so its bits must equal the CPU scalar kernel's.</summary>
    protected virtual bool BitIdenticalToCpu => true;

    /// <summary>
    /// The longest tensor of <see cref="FindNonFinite_finds_one_special_value_anywhere"/>: past the CPU's multi-core
    /// threshold (512 KiB), so the split is exercised too; an emulated device takes a shorter one, same positions.
    /// </summary>
    protected virtual int LongestFindLength(DType dtype) => dtype == DType.Float32 ? (1 << 17) + 1 : (1 << 18) + 1;

    private static readonly DType[] GradientTypes = [DType.Float32, DType.Float16, DType.BFloat16];
    private static readonly DType?[] WorkingTypes = [null, DType.Float16, DType.BFloat16];

    private static Gen<AdamWOptions> AdamWs =>
        from lr in Gen.Elements(1e-4, 1e-3, 3e-2)
        from beta1 in Gen.Elements(0.0, 0.5, 0.9)
        from beta2 in Gen.Elements(0.5, 0.99, 0.999)
        from eps in Gen.Elements(1e-8, 1e-6, 1e-3)
        from decay in Gen.Elements(0.0, 1e-2, 0.3)
        select new AdamWOptions { LearningRate = lr, Beta1 = beta1, Beta2 = beta2, Epsilon = eps, WeightDecay = decay };

    private static Gen<SgdOptions> Sgds =>
        from lr in Gen.Elements(1e-3, 1e-2, 0.1)
        from momentum in Gen.Elements(0.5, 0.9, 0.99)
        from nesterov in Gen.Elements(false, true)
        from dampening in nesterov ? Gen.Constant(0.0) : Gen.Elements(0.0, 0.1)
        from decay in Gen.Elements(0.0, 1e-4, 0.05)
        select new SgdOptions { LearningRate = lr, Momentum = momentum, Nesterov = nesterov, Dampening = dampening, WeightDecay = decay };

    /// <summary>Loss scales a gradient of magnitude up to 1 survives in its dtype (Float16 stops at 65504).</summary>
    private static Gen<double> LossScales(DType gradient) =>
        gradient == DType.Float16 ? Gen.Elements(1.0, 1024.0, 3.0) : Gen.Elements(1.0, 65536.0, 3.0, 1.0 / 8);

    private void Property(bool adamW)
    {
        _ = Device;   // skips (or fails) here, not inside the property, when the backend is missing
        var cases = from gradient in Gen.Elements(GradientTypes)
                    from working in Gen.Elements(WorkingTypes)
                    from length in Gen.OneOf(Gen.Choose(0, 70), Gen.Choose(71, 300))
                    from steps in Gen.Choose(1, 40)
                    from scale in LossScales(gradient)
                    from a in AdamWs
                    from s in Sgds
                    from seed in Gen.Choose(0, int.MaxValue)
                    select new StepCase(adamW ? a : null, adamW ? null : s, gradient, working, length, steps, scale, seed);
        Prop.ForAll(cases.ToArbitrary(), c => CaseAssert.Passes(c, Device))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    [Fact]
    public void AdamW_on_random_shapes_and_options_stays_within_the_derived_bound() => Property(adamW: true);

    [Fact]
    public void Sgd_on_random_shapes_and_options_stays_within_the_derived_bound() => Property(adamW: false);

    /// <summary>A thousand steps: the bound grows with every step and must still hold (and stay informative) at the end.</summary>
    [Theory]
    [InlineData(true, DType.BFloat16, DType.BFloat16)]
    [InlineData(true, DType.Float16, DType.Float16)]
    [InlineData(false, DType.Float32, DType.BFloat16)]
    public void A_thousand_steps_stay_within_the_derived_bound(bool adamW, DType gradient, DType working)
    {
        var c = new StepCase(adamW ? new AdamWOptions() : null, adamW ? null : new SgdOptions(), gradient, working,
            Length: 67, Steps: 1000, LossScale: gradient == DType.Float16 ? 1024 : 65536, Seed: 7);
        StepAssert.WithinBound(c, c.Run(Device, Device.Kind));
    }

    /// <summary>Every length 0..257 (every vector tail of every width) and one split over the cores.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Every_tail_length_and_a_multi_core_length_stay_within_the_bound(bool adamW)
    {
        foreach (int length in Enumerable.Range(0, 258).Append((1 << 20) + 7))
        {
            var c = new StepCase(adamW ? new AdamWOptions() : null, adamW ? null : new SgdOptions { Nesterov = true, WeightDecay = 1e-3 },
                GradientTypes[length % 3], WorkingTypes[(length / 3) % 3], length, Steps: 2, LossScale: 1024, Seed: length);
            StepAssert.WithinBound(c, c.Run(Device, Device.Kind));
        }
    }

    /// <summary>
    /// Every (gradient, working) pair of both optimizers: the same bits as the CPU scalar kernel, which follows the
    /// documented binary32 sequence one element at a time (every CPU width and CUDA must agree with it exactly).
    /// </summary>
    [Fact]
    public void Bits_equal_the_cpu_scalar_kernel_where_arithmetic_is_correctly_rounded()
    {
        Device device = Device;
        Assert.SkipUnless(BitIdenticalToCpu, $"{device}: divide and sqrt are not correctly rounded here; the derived bound tests it instead");
        foreach (bool adamW in new[] { true, false })
            foreach (DType gradient in GradientTypes)
                foreach (DType? working in WorkingTypes)
                {
                    var c = new StepCase(adamW ? new AdamWOptions { WeightDecay = 0.1 } : null,
                        adamW ? null : new SgdOptions { WeightDecay = 0.01, Nesterov = gradient == DType.Float16 },
                        gradient, working, Length: 1000 + (int)gradient, Steps: 3, LossScale: 1024, Seed: (int)gradient * 3 + (working is null ? 0 : 1));
                    if (c.BitsDiffer(Backends.CpuScalar, device) is { } failure) Assert.Fail($"{c.Name}: {failure}");
                }
    }

    /// <summary>The kernels run over buffers longer than the step: every byte after each tensor must keep its poison.</summary>
    [Theory]
    [InlineData(true, 17)]
    [InlineData(true, 1023)]
    [InlineData(false, 1)]
    [InlineData(false, 4099)]
    public void A_step_writes_nothing_past_its_tensors(bool adamW, int count)
    {
        Backend backend = Device.Backend;
        DeviceBuffer Guarded(int bytes, byte[] payload)
        {
            DeviceBuffer buffer = backend.Allocate(bytes + GuardBytes);
            backend.Write(buffer, 0, [.. payload, .. Enumerable.Repeat(Poison, GuardBytes)]);
            return buffer;
        }
        var random = new Random(count);
        byte[] Floats() => [.. Enumerable.Range(0, count).SelectMany(_ => BitConverter.GetBytes((float)random.NextDouble()))];
        using DeviceBuffer p = Guarded(count * 4, Floats()), g = Guarded(count * 2, RandomFinite(random, count)),
            m = Guarded(count * 4, Floats()), v = Guarded(count * 4, Floats()), w = Guarded(count * 2, new byte[count * 2]);
        var buffers = new StepBuffers(p, g, DType.BFloat16, m, adamW ? v : null, w, DType.Float16, count);
        if (adamW) backend.AdamWStep(buffers, AdamWConstants.For(new AdamWOptions(), 3, 0.5f));
        else backend.SgdStep(buffers, SgdConstants.For(new SgdOptions(), false, 0.5f));
        foreach ((string name, DeviceBuffer buffer, int bytes) in new[] { ("parameters", p, count * 4), ("gradient", g, count * 2),
            ("first", m, count * 4), ("second", v, count * 4), ("working", w, count * 2) })
        {
            var after = new byte[GuardBytes];
            backend.Read(buffer, bytes, after);
            Assert.True(after.AsSpan().IndexOfAnyExcept(Poison) < 0, $"{(adamW ? "adamw" : "sgd")} wrote past {name}");
        }
    }

    /// <summary>Random finite BFloat16 bits (exponent field never all ones).</summary>
    private static byte[] RandomFinite(Random random, int count) =>
        [.. Enumerable.Range(0, count).SelectMany(_ => BitConverter.GetBytes((ushort)(random.Next(0x7F00) | (random.Next(2) << 15))))];

    [Fact]
    public void A_non_finite_gradient_element_spoils_only_its_own_element()
    {
        Device device = Device;
        using Tensor p = OnDevice([1f, 2f, 3f, 4f, 5f], [5], device);
        using Tensor m = Tensor.Zeros(DType.Float32, [5], device);
        using Tensor v = Tensor.Zeros(DType.Float32, [5], device);
        using Tensor g = OnDevice([0.5f, float.NaN, 0.25f, float.PositiveInfinity, -1f], [5], device);
        OptimizerSteps.AdamW(p, g, m, v, new AdamWOptions(), 1, 1);
        float[] after = p.ToArray<float>();
        Assert.True(float.IsNaN(after[1]) && float.IsNaN(after[3]), "a NaN or Inf gradient should propagate into its weight");
        Assert.All(new[] { 0, 2, 4 }, i => Assert.True(float.IsFinite(after[i]) && after[i] != i + 1, $"weight {i} = {after[i]}"));
    }

    /// <summary>
    /// The sign of zero and the first-step seeding: a -0 gradient with weight decay 0 and -0 (both mean "none") seeds the
    /// buffer with -0 exactly; an infinite weight with no decay stays infinite (0 * Inf is never formed); and a NaN-poisoned
    /// momentum buffer is ignored on the first step.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sgd_first_step_seeds_the_buffer_and_keeps_the_sign_of_zero(bool negativeZeroDecay)
    {
        double weightDecay = negativeZeroDecay ? -0.0 : 0.0;
        Device device = Device;
        using Tensor p = OnDevice([1f, float.PositiveInfinity, -2f], [3], device);
        using Tensor g = OnDevice([-0f, 0.5f, -0.25f], [3], device);
        using Tensor b = OnDevice([float.NaN, float.NaN, float.NaN], [3], device);
        OptimizerSteps.Sgd(p, g, b, new SgdOptions { LearningRate = 0.5, WeightDecay = weightDecay }, firstStep: true);
        Assert.Equal([0x8000_0000u, BitConverter.SingleToUInt32Bits(0.5f), BitConverter.SingleToUInt32Bits(-0.25f)],
            b.ToArray<float>().Select(BitConverter.SingleToUInt32Bits));
        Assert.Equal([1f, float.PositiveInfinity, -1.875f], p.ToArray<float>());
    }

    public static TheoryData<DType, ulong> NonFiniteValues()
    {
        var data = new TheoryData<DType, ulong>();
        foreach (DType dtype in GradientTypes)
            foreach (ulong bits in SpecialValues.Bits(dtype))
                if (IsNonFinite(dtype, bits)) data.Add(dtype, bits);
        return data;
    }

    private static bool IsNonFinite(DType dtype, ulong bits) => UnscaleCase.IsNonFinite(dtype, bits);

    /// <summary>Any one NaN or ±Inf, in any tensor of a list, at any position (first, last, odd tails, past the vector loop).</summary>
    [Theory]
    [MemberData(nameof(NonFiniteValues))]
    public void FindNonFinite_finds_one_special_value_anywhere(DType dtype, ulong special)
    {
        Device device = Device;
        int[] lengths = [1, 2, 63, 257, LongestFindLength(dtype)];
        var random = new Random((int)special);
        GradientInput[] finite = [.. lengths.Select(n => new GradientInput(dtype, n, GradientFill.FiniteBits))];
        // The shared case also checks that every input is left as it was (the check is read-only).
        for (int holder = 0; holder < lengths.Length; holder++)
            foreach (int at in new[] { 0, lengths[holder] - 1, lengths[holder] / 2, random.Next(lengths[holder]) })
                Assert.True(CaseAssert.Flags(new UnscaleCase(finite, 1, random.Next(), (holder, at, special), FindOnly: true), device),
                    $"0x{special:X} in tensors[{holder}] at {at} was not found");
        Assert.False(CaseAssert.Flags(new UnscaleCase(finite, 1, random.Next(), FindOnly: true), device), "finite values only");
    }

    [Fact]
    public void FindNonFinite_of_an_empty_list_or_empty_tensors_is_false()
    {
        Assert.False(Precision.FindNonFinite([]));
        using Tensor empty = Tensor.Empty(DType.Float16, [0], Device);
        using Tensor hollow = Tensor.Empty(DType.BFloat16, [4, 0], Device);
        Assert.False(Precision.FindNonFinite([empty, hollow, empty]));
    }
}

public sealed class CpuOptimizerStepsTests : OptimizerStepsParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class CpuScalarOptimizerStepsTests : OptimizerStepsParityTests
{
    protected override Device Device => Backends.CpuScalar;
}

public sealed class Cpu128OptimizerStepsTests : OptimizerStepsParityTests
{
    protected override Device Device => Backends.Cpu128;
}

public sealed class Cpu256OptimizerStepsTests : OptimizerStepsParityTests
{
    protected override Device Device => Backends.Cpu256;
}

public sealed class OpenClOptimizerStepsParityTests : OptimizerStepsParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 15;

    protected override bool BitIdenticalToCpu => ((NativeTensor.Runtime.OpenCl.OpenClBackend)Device.Backend).RoundsDivideAndSqrtCorrectly;
}

public sealed class CudaOptimizerStepsParityTests : OptimizerStepsParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
