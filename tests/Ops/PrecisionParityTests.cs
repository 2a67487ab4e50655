using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What every backend must do for <see cref="Precision.Convert"/>: equal <see cref="PrecisionReference"/> bit for
/// bit on every 16-bit pattern (widening, exhaustively), on every rounding boundary of both 16-bit formats and on
/// random binary32 patterns (narrowing), at every length that exercises vector tails and the multi-core split.
/// </summary>
public abstract class PrecisionParityTests
{
    protected abstract Device Device { get; }

    protected virtual int PropertyRuns => 200;

    private static readonly DType[] Floats = [DType.Float32, DType.Float16, DType.BFloat16];

    /// <summary>Every direction out of a 16-bit format (binary32 sources are covered by the boundary and random tests).</summary>
    public static TheoryData<DType, DType> From16Bits()
    {
        var data = new TheoryData<DType, DType>();
        foreach (DType from in new[] { DType.Float16, DType.BFloat16 })
            foreach (DType to in Floats)
                data.Add(from, to);
        return data;
    }

    [Theory]
    [MemberData(nameof(From16Bits))]
    public void Every_16_bit_pattern_converts_exactly(DType from, DType to)
    {
        uint[] all = Enumerable.Range(0, 65536).Select(i => (uint)i).ToArray();
        CaseAssert.Passes(ConvertCase.Of(from, to, all), Device);
    }

    [Theory]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    public void Every_rounding_boundary_narrows_exactly(DType to)
    {
        CaseAssert.Passes(ConvertCase.Of(DType.Float32, to, Boundaries(to)), Device);
    }

    [Theory]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    public void Random_binary32_patterns_narrow_exactly(DType to)
    {
        var random = new Random((int)to);
        uint[] bits = Enumerable.Range(0, 1 << 20).Select(_ => (uint)random.NextInt64(0, 1L << 32)).ToArray();
        CaseAssert.Passes(ConvertCase.Of(DType.Float32, to, bits), Device);
    }

    [Fact]
    public void Every_length_and_direction_equals_the_reference_into_a_reused_output()
    {
        Device device = Device;
        var cases = from source in Gen.Elements(Floats)
                    from target in Gen.Elements(Floats)
                    from length in Gen.OneOf(Gen.Choose(0, 257), Gen.Choose(258, 70_000), Gen.Elements(300_001, 1 << 19))
                    from seed in Gen.Choose(0, int.MaxValue)
                    select new ConvertCase(source, target, [length], seed);
        // The shared case: into a reused poisoned output (the same instance back), then into a new one of the same
        // shape, dtype and device; both bit-exact with the reference.
        Prop.ForAll(cases.ToArbitrary(), c => CaseAssert.Passes(c, device)).Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    [Fact]
    public void Shapes_are_kept()
    {
        using Tensor source = Tensor.Empty(DType.Float32, [3, 0, 5], Device);
        using Tensor empty = Precision.Convert(source, DType.BFloat16);
        Assert.Equal(new long[] { 3, 0, 5 }, empty.Shape);
        CaseAssert.Passes(new ConvertCase(DType.Float16, DType.Float32, [7, 9], 0, ConvertInputs.SpecialValues), Device);
    }

    [Theory]
    [InlineData("source dtype")]
    [InlineData("target dtype")]
    [InlineData("output dtype")]
    [InlineData("output shape")]
    [InlineData("output device")]
    [InlineData("disposed source")]
    [InlineData("disposed output")]
    public void Bad_arguments_are_refused_before_anything_is_written(string rule)
    {
        Device device = Device;
        Device other = device == Backends.CpuScalar ? NativeTensor.Device.Cpu : Backends.CpuScalar;
        using Tensor source = FromBytes(DType.Float32, [4, 8], device, RandomBytes(new Random(1), 4 * 8 * 4));
        using Tensor ints = Tensor.Empty(DType.Int32, [4, 8], device);
        using Tensor output = Poisoned(rule switch { "output dtype" => DType.Float16, _ => DType.BFloat16 },
            rule == "output shape" ? [8, 4] : [4, 8], rule == "output device" ? other : device);
        Tensor disposed = Tensor.Empty(DType.Float32, [4, 8], device);
        disposed.Dispose();
        Action call = rule switch
        {
            "source dtype" => () => Precision.Convert(ints, DType.BFloat16, output),
            "target dtype" => () => Precision.Convert(source, DType.Int32),
            "disposed source" => () => Precision.Convert(disposed, DType.BFloat16, output),
            "disposed output" => () => Precision.Convert(source, DType.BFloat16, disposed),
            _ => () => Precision.Convert(source, DType.BFloat16, output),
        };
        if (rule.StartsWith("disposed", StringComparison.Ordinal)) Assert.Throws<ObjectDisposedException>(call);
        else Assert.Throws<ArgumentException>(call);
        Assert.True(Bytes(output).AsSpan().IndexOfAnyExcept(Poison) < 0, "a refused conversion wrote into the output");
    }

    /// <summary>
    /// For every pair of adjacent finite values of <paramref name="to"/>: the binary32 exactly halfway between them
    /// (a tie) and its two binary32 neighbours; plus the overflow threshold and the special values.
    /// </summary>
    internal static uint[] Boundaries(DType to)
    {
        var result = new List<uint>();
        for (int p = 0; p < 0x8000; p++)
        {
            double low = Widen(to, (ushort)p), high = Widen(to, (ushort)(p + 1));
            if (!double.IsFinite(low)) continue;
            if (!double.IsFinite(high)) high = to == DType.Float16 ? 65536 : Math.Pow(2, 128);   // IEEE's unbounded next value
            float middle = (float)((low + high) / 2);
            if (!float.IsFinite(middle)) continue;
            foreach (float f in new[] { middle, MathF.BitDecrement(middle), MathF.BitIncrement(middle) })
            {
                result.Add(BitConverter.SingleToUInt32Bits(f));
                result.Add(BitConverter.SingleToUInt32Bits(-f));
            }
        }
        result.AddRange(SpecialValues.Bits(DType.Float32).Select(b => (uint)b));
        return [.. result];
    }

    private static double Widen(DType dtype, ushort bits) =>
        BitConverter.UInt32BitsToSingle(dtype == DType.Float16 ? PrecisionReference.HalfToSingle(bits) : PrecisionReference.BFloat16ToSingle(bits));
}

public sealed class CpuPrecisionTests : PrecisionParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class CpuScalarPrecisionTests : PrecisionParityTests
{
    protected override Device Device => Backends.CpuScalar;
}

public sealed class Cpu128PrecisionTests : PrecisionParityTests
{
    protected override Device Device => Backends.Cpu128;
}

public sealed class Cpu256PrecisionTests : PrecisionParityTests
{
    protected override Device Device => Backends.Cpu256;
}

public sealed class OpenClPrecisionParityTests : PrecisionParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 60;
}

public sealed class CudaPrecisionParityTests : PrecisionParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
