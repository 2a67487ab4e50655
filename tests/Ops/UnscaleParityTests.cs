using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What every backend must do for <see cref="Precision.UnscaleAndCheck"/>: scale every element of every gradient in
/// place bit for bit as <see cref="UnscaleReference.Unscale"/> does (random bit patterns, so NaN payloads, ±Inf,
/// subnormals and ±0 throughout), at every length that exercises vector tails and the multi-core split, and report
/// exactly whether an input was non-finite, whichever gradient of the list held it.
/// </summary>
public abstract class UnscaleParityTests
{
    protected abstract Device Device { get; }

    /// <summary>The kernel runs over a buffer longer than the gradient: the bytes after it must keep their poison.</summary>
    [Theory]
    [InlineData(DType.Float32, 1)]
    [InlineData(DType.Float32, 1023)]
    [InlineData(DType.BFloat16, 7)]
    [InlineData(DType.BFloat16, 300_001)]
    public void Unscaling_writes_nothing_past_the_gradient(DType dtype, int count)
    {
        Device device = Device;
        var backend = device.Backend;
        long bytes = (long)count * dtype.SizeOf();
        byte[] data = RandomBytes(new Random(count), bytes);
        using var buffer = backend.Allocate(bytes + GuardBytes);
        backend.Write(buffer, 0, [.. data, .. Enumerable.Repeat(Poison, GuardBytes)]);
        backend.UnscaleAndCheck([(buffer, dtype, (long)count)], 0.25f);
        var after = new byte[bytes + GuardBytes];
        backend.Read(buffer, 0, after);
        Assert.True(after.AsSpan((int)bytes).IndexOfAnyExcept(Poison) < 0, "unscale wrote into the guard region");
        for (int i = 0; i < count; i++)
        {
            uint input = dtype == DType.Float32 ? BitConverter.ToUInt32(data, i * 4) : BitConverter.ToUInt16(data, i * 2);
            uint got = dtype == DType.Float32 ? BitConverter.ToUInt32(after, i * 4) : BitConverter.ToUInt16(after, i * 2);
            Assert.Equal(UnscaleReference.Unscale(input, dtype, 0.25f, out _), got);
        }
    }

    protected virtual int PropertyRuns => 100;

    private static readonly DType[] Gradients = [DType.Float32, DType.BFloat16];

    /// <summary>
    /// Loss-scale reciprocals: 1; 2^-16 (the default scale's, which 1/65536 computed in double also gives, bit for bit);
    /// two that make every product round; a subnormal one (products underflow); and two above 1 (products overflow).
    /// </summary>
    public static readonly float[] Scales =
        [1f, MathF.ScaleB(1, -16), (float)(1 / 3.0), (float)(1 / 1000.0), MathF.ScaleB(1, -140), 4f, 65504f];

    public static TheoryData<DType, float> DTypesAndScales()
    {
        var data = new TheoryData<DType, float>();
        foreach (DType dtype in Gradients)
            foreach (float scale in Scales)
                data.Add(dtype, scale);
        return data;
    }

    [Theory]
    [MemberData(nameof(DTypesAndScales))]
    public void Every_length_0_to_257_in_one_list_equals_the_reference(DType dtype, float scale)
    {
        GradientInput[] gradients = [.. Enumerable.Range(0, 258).Select(n => new GradientInput(dtype, n, n == 257 ? GradientFill.SpecialValues : GradientFill.RandomBits))];
        CaseAssert.Passes(new UnscaleCase(gradients, scale, HashCode.Combine(dtype, scale)), Device);
    }

    [Theory]
    [InlineData(DType.Float32, 300_001)]
    [InlineData(DType.Float32, (1 << 20) + 7)]
    [InlineData(DType.BFloat16, 300_001)]
    [InlineData(DType.BFloat16, (1 << 20) + 7)]
    public void Large_gradients_split_over_cores_equal_the_reference(DType dtype, int length)
    {
        CaseAssert.Passes(new UnscaleCase([new(dtype, length, GradientFill.FiniteBits), new(dtype, length)], (float)(1 / 65536.0), length), Device);
    }

    public static TheoryData<DType, ulong> NonFiniteValues()
    {
        var data = new TheoryData<DType, ulong>();
        foreach (DType dtype in Gradients)
            foreach (ulong bits in SpecialValues.Bits(dtype))
            {
                uint single = dtype == DType.Float32 ? (uint)bits : (uint)bits << 16;
                if ((single & 0x7FFF_FFFF) >= 0x7F80_0000) data.Add(dtype, bits);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(NonFiniteValues))]
    public void A_non_finite_input_in_any_one_gradient_sets_the_flag(DType dtype, ulong special)
    {
        int[] lengths = [1, 17, 257, 4099];
        var random = new Random((int)special);
        GradientInput[] finite = [.. lengths.Select(n => new GradientInput(dtype, n, GradientFill.FiniteBits))];
        for (int holder = 0; holder < lengths.Length; holder++)
        {
            int at = random.Next(lengths[holder]);
            bool flag = CaseAssert.Flags(new UnscaleCase(finite, MathF.ScaleB(1, -16), random.Next(), (holder, at, special)), Device);
            Assert.True(flag, $"0x{special:X} in gradients[{holder}] at {at} was not reported");
        }
        Assert.False(CaseAssert.Flags(new UnscaleCase(finite, MathF.ScaleB(1, -16), random.Next()), Device), "finite values only");
    }

    [Fact]
    public void Products_that_overflow_or_underflow_do_not_set_the_flag()
    {
        float[] large = [float.MaxValue, -float.MaxValue, MathF.ScaleB(1, 127), 1.5f];
        (bool flag, uint[] overflowed) = Run(large, 4f);
        Assert.False(flag, "a finite input whose product overflows counted as non-finite");
        Assert.Equal([0x7F80_0000u, 0xFF80_0000u, 0x7F80_0000u, BitConverter.SingleToUInt32Bits(6f)], overflowed);

        // 2^-126 * 2^-16 = 2^-142 (subnormal 0x80); 2^-149 * 2^-16 and 2^-149 / 2 (a tie) round to +0 and -0;
        // 3 * 2^-149 / 2 is a tie that rounds to the even 2 * 2^-149. A flushing multiply would give 0 for all.
        float tiny = float.Epsilon;
        (flag, uint[] underflowed) = Run([MathF.ScaleB(1, -126), tiny, -tiny, 3 * tiny], MathF.ScaleB(1, -16));
        Assert.False(flag);
        Assert.Equal([0x80u, 0u, 0x8000_0000u, 0u], underflowed);
        (flag, underflowed) = Run([tiny, -tiny, 3 * tiny, 5 * tiny], 0.5f);
        Assert.False(flag);
        Assert.Equal([0u, 0x8000_0000u, 2u, 2u], underflowed);

        // BFloat16: the largest finite value times 4 is Inf; its smallest subnormal (2^-133) times 2^-16 rounds to 0.
        byte[] bf16 = [.. BitConverter.GetBytes((ushort)0x7F7F), .. BitConverter.GetBytes((ushort)0x0001), .. BitConverter.GetBytes((ushort)0x3F80)];
        Assert.False(Check([(DType.BFloat16, bf16)], 4f, "bf16 overflow"));
        Assert.False(Check([(DType.BFloat16, bf16)], MathF.ScaleB(1, -16), "bf16 underflow"));
    }

    [Fact]
    public void An_empty_list_and_empty_tensors_report_nothing()
    {
        Assert.False(Precision.UnscaleAndCheck([], 0.5f));
        using Tensor empty = Tensor.Empty(DType.Float32, [0], Device);
        using Tensor hollow = Tensor.Empty(DType.BFloat16, [3, 0, 5], Device);
        Assert.False(Precision.UnscaleAndCheck([empty, hollow], 0.5f));
        using Tensor nan = FromBytes(DType.Float32, [1], Device, BitConverter.GetBytes(0x7FC0_0000u));
        Assert.True(Precision.UnscaleAndCheck([empty, nan, hollow], 0.5f));
    }

    [Fact]
    public void Random_lists_of_mixed_dtypes_equal_the_reference()
    {
        _ = Device;   // skips (or fails) here, not inside the property, when the backend is missing
        var cases = from count in Gen.Choose(1, 4)
                    from dtypes in Gen.ArrayOf(Gen.Elements(Gradients), count)
                    from lengths in Gen.ArrayOf(Gen.OneOf(Gen.Choose(0, 257), Gen.Choose(258, 70_000)), count)
                    from scale in Gen.OneOf(Gen.Elements(Scales), Gen.Choose(1, 0x7F7F_FFFF).Select(b => BitConverter.Int32BitsToSingle(b)))
                    from finite in Gen.Elements(true, false)
                    from seed in Gen.Choose(0, int.MaxValue)
                    select new UnscaleCase([.. dtypes.Select((d, k) => new GradientInput(d, lengths[k], finite ? GradientFill.FiniteBits : GradientFill.RandomBits))], scale, seed);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            bool flag = CaseAssert.Flags(c, Device);
            if (c.Gradients.All(g => g.Fill == GradientFill.FiniteBits)) Assert.False(flag);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    [Theory]
    [InlineData("null list")]
    [InlineData("null gradient")]
    [InlineData("disposed gradient")]
    [InlineData("Float16 gradient")]
    [InlineData("Int32 gradient")]
    [InlineData("gradient on another device")]
    [InlineData("gradient twice")]
    [InlineData("scale NaN")]
    [InlineData("scale +Inf")]
    [InlineData("scale 0")]
    [InlineData("scale -0")]
    [InlineData("scale negative")]
    public void Bad_arguments_are_refused_before_anything_is_written(string rule)
    {
        Device device = Device;
        Device other = device == Backends.CpuScalar ? NativeTensor.Device.Cpu : Backends.CpuScalar;
        var random = new Random(rule.Length);
        byte[] singleBytes = RandomBytes(random, 33 * 4), bf16Bytes = RandomBytes(random, 33 * 2);
        using Tensor single = FromBytes(DType.Float32, [33], device, singleBytes);
        using Tensor bf16 = FromBytes(DType.BFloat16, [33], device, bf16Bytes);
        using Tensor half = FromBytes(DType.Float16, [33], device, RandomBytes(random, 33 * 2));
        using Tensor ints = FromBytes(DType.Int32, [33], device, RandomBytes(random, 33 * 4));
        using Tensor elsewhere = FromBytes(DType.Float32, [33], other, singleBytes);
        Tensor disposed = Tensor.Empty(DType.Float32, [33], device);
        disposed.Dispose();
        Tensor? third = rule switch
        {
            "null gradient" => null,
            "disposed gradient" => disposed,
            "Float16 gradient" => half,
            "Int32 gradient" => ints,
            "gradient on another device" => elsewhere,
            "gradient twice" => single,
            _ => bf16,
        };
        float scale = rule switch
        {
            "scale NaN" => float.NaN,
            "scale +Inf" => float.PositiveInfinity,
            "scale 0" => 0f,
            "scale -0" => -0f,
            "scale negative" => -0.5f,
            _ => 0.5f,
        };
        IReadOnlyList<Tensor> list = rule == "null list" ? null! : [single, bf16, third!];
        Exception refused = rule switch
        {
            "null list" or "null gradient" => Assert.Throws<ArgumentNullException>(() => Precision.UnscaleAndCheck(list, scale)),
            "disposed gradient" => Assert.Throws<ObjectDisposedException>(() => Precision.UnscaleAndCheck(list, scale)),
            _ when rule.StartsWith("scale", StringComparison.Ordinal) =>
                Assert.Throws<ArgumentOutOfRangeException>(() => Precision.UnscaleAndCheck(list, scale)),
            _ => Assert.Throws<ArgumentException>(() => Precision.UnscaleAndCheck(list, scale)),
        };
        if (rule is "null gradient" or "Float16 gradient" or "Int32 gradient" or "gradient on another device" or "gradient twice")
            Assert.Contains("gradients[2]", refused.Message);
        if (rule == "Float16 gradient") Assert.Contains("widen Float16 ones with Precision.Convert", refused.Message);
        Assert.Equal(singleBytes, Bytes(single));
        Assert.Equal(bf16Bytes, Bytes(bf16));
        Assert.Equal(singleBytes, Bytes(elsewhere));
    }

    /// <summary>Float32 values through the device, returning the flag and the result bits.</summary>
    private (bool Flag, uint[] Bits) Run(float[] values, float scale)
    {
        using Tensor tensor = FromBytes(DType.Float32, [values.Length], Device, values.SelectMany(BitConverter.GetBytes).ToArray());
        bool flag = Precision.UnscaleAndCheck([tensor], scale);
        byte[] bytes = Bytes(tensor);
        return (flag, Enumerable.Range(0, values.Length).Select(i => BitConverter.ToUInt32(bytes, i * 4)).ToArray());
    }

    /// <summary>Unscales listed bytes on the device, compares every byte and the flag with the reference; returns the flag (the shared <see cref="UnscaleCase"/> covers generated inputs).</summary>
    private bool Check((DType DType, byte[] Bytes)[] inputs, float scale, string what)
    {
        Device device = Device;
        var tensors = inputs.Select(g => FromBytes(g.DType, [g.Bytes.Length / g.DType.SizeOf()], device, g.Bytes)).ToList();
        try
        {
            bool flag = Precision.UnscaleAndCheck(tensors, scale);
            bool expectedFlag = false;
            for (int k = 0; k < inputs.Length; k++)
            {
                byte[] expected = UnscaleCase.Expected(inputs[k].DType, inputs[k].Bytes, scale, out bool nonFinite);
                expectedFlag |= nonFinite;
                BitExact(expected, Bytes(tensors[k]), $"{what}: gradients[{k}] ({inputs[k].Bytes.Length / inputs[k].DType.SizeOf()} {inputs[k].DType})");
            }
            Assert.True(expectedFlag == flag, $"{what}: flag {flag}, reference {expectedFlag}");
            return flag;
        }
        finally
        {
            foreach (Tensor tensor in tensors) tensor.Dispose();
        }
    }
}

public sealed class CpuUnscaleTests : UnscaleParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class CpuScalarUnscaleTests : UnscaleParityTests
{
    protected override Device Device => Backends.CpuScalar;
}

public sealed class Cpu128UnscaleTests : UnscaleParityTests
{
    protected override Device Device => Backends.Cpu128;
}

public sealed class Cpu256UnscaleTests : UnscaleParityTests
{
    protected override Device Device => Backends.Cpu256;
}

public sealed class OpenClUnscaleParityTests : UnscaleParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 25;
}

public sealed class CudaUnscaleParityTests : UnscaleParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
