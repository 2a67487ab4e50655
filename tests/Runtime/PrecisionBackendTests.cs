using System.Runtime.InteropServices;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// Backend-level exhaustive checks of <c>kernels/precision.cl</c>, bit for bit against
/// <see cref="PrecisionReference.Convert"/>: every Float16 and BFloat16 pattern for widening and the 16 &lt;-&gt; 16
/// directions; for narrowing from Float32, every rounding boundary of both 16-bit formats (each pattern's exact value,
/// the midpoint to its successor and that midpoint's two float neighbours), the special values, and random bits.
/// Each launch writes into a buffer poisoned with 0xFF and then with 0x00 (so an unwritten element cannot pass by
/// matching the poison) that runs on past the output, and the run-on must come back untouched.
/// </summary>
public abstract class PrecisionBackendTests
{
    private const int GuardBytes = 256;
    private const int RandomCount = 1 << 22;

    protected abstract Device Device { get; }

    [Fact]
    public void Float16_and_BFloat16_widen_exactly_for_every_pattern()
    {
        uint[] all = AllPatterns();
        Check(all, DType.Float16, DType.Float32);
        Check(all, DType.BFloat16, DType.Float32);
    }

    [Fact]
    public void Float16_and_BFloat16_convert_into_each_other_for_every_pattern()
    {
        uint[] all = AllPatterns();
        Check(all, DType.Float16, DType.BFloat16);
        Check(all, DType.BFloat16, DType.Float16);
    }

    [Fact]
    public void Narrowing_to_Float16_rounds_every_boundary_to_nearest_even() => Check(Boundaries(DType.Float16), DType.Float32, DType.Float16);

    [Fact]
    public void Narrowing_to_BFloat16_rounds_every_boundary_to_nearest_even() => Check(Boundaries(DType.BFloat16), DType.Float32, DType.BFloat16);

    [Fact]
    public void Narrowing_keeps_special_values_by_the_rules()
    {
        uint[] specials = [.. SpecialValues.Bits(DType.Float32).Select(b => (uint)b), .. ExtraSpecials()];
        Check(specials, DType.Float32, DType.Float16);
        Check(specials, DType.Float32, DType.BFloat16);
    }

    [Fact]
    public void Narrowing_matches_the_reference_on_random_bits()
    {
        var random = new Random(20240611);
        var bits = new uint[RandomCount];
        random.NextBytes(MemoryMarshal.AsBytes(bits.AsSpan()));
        Check(bits, DType.Float32, DType.Float16);
        Check(bits, DType.Float32, DType.BFloat16);
    }

    [Fact]
    public void Same_dtype_copies_and_empty_counts_write_nothing()
    {
        uint[] all = AllPatterns();
        Check(all, DType.Float16, DType.Float16);
        Check([], DType.Float32, DType.Float16);
    }

    private static uint[] AllPatterns() => [.. Enumerable.Range(0, 1 << 16).Select(i => (uint)i)];

    /// <summary>
    /// For every finite 16-bit pattern p of <paramref name="format"/> (both signs): its exact binary32 value, the
    /// binary32 midpoint between it and the next pattern away from zero (exact: it needs one bit more than the
    /// format has), and the midpoint's two binary32 neighbours.
    /// </summary>
    private static uint[] Boundaries(DType format)
    {
        var values = new List<uint>(4 << 16);
        for (uint p = 0; p < 1 << 16; p++)
        {
            uint magnitude = p & 0x7FFF;
            bool finite = format == DType.Float16 ? magnitude < 0x7C00 : magnitude < 0x7F80;
            if (!finite) continue;
            uint exact = (uint)PrecisionReference.Convert(p, format, DType.Float32);
            uint next = (uint)PrecisionReference.Convert(p + 1, format, DType.Float32);
            // The successor of the largest finite value is Inf: step by the ulp below it instead.
            double step = (p & 0x7FFF) == (format == DType.Float16 ? 0x7BFFu : 0x7F7Fu)
                ? Math.Abs(Single(exact)) - Math.Abs(Single((uint)PrecisionReference.Convert(p - 1, format, DType.Float32)))
                : Math.Abs(Single(next)) - Math.Abs(Single(exact));
            double midpoint = Math.Abs(Single(exact)) + step / 2;
            uint mid = BitConverter.SingleToUInt32Bits((float)midpoint) | (exact & 0x8000_0000);
            if ((double)Single(mid & 0x7FFF_FFFF) != midpoint) throw new InvalidOperationException($"midpoint of 0x{p:X4} is not a binary32");
            values.Add(exact);
            values.Add(mid);
            values.Add(mid - 1);
            values.Add(mid + 1);
        }
        return [.. values];
    }

    /// <summary>Values at the edges of the formats' ranges and NaNs whose payload lives only in the dropped bits.</summary>
    private static uint[] ExtraSpecials() =>
    [
        0x7F800001, 0xFF800001, 0x7F801FFF, 0x7FC01FFF, 0x7F80FFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFE000,  // NaNs
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0xC77FF000, 0x47800000,                          // 65504 .. 65536
        0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0xFF7F8000,                                                  // bfloat16's top
        0x38800000, 0x387FFFFF, 0x387FF000, 0x387FE000, 0x33800000, 0x33000000, 0x33000001, 0x32FFFFFF,  // binary16 subnormal edges
        0xB3000001, 0x33C00000, 0x33A00000, 0x00800000, 0x007FFFFF, 0x00000001, 0x80000001, 0x0000FFFF,  // and binary32's
        0x00008000, 0x00018000, 0x00008001, 0x80000000, 0x00000000,
    ];

    private static float Single(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    /// <summary>Converts <paramref name="input"/> on the device and compares every element with the reference.</summary>
    private void Check(uint[] input, DType from, DType to)
    {
        Backend backend = Device.Backend;
        int fromSize = from.SizeOf(), toSize = to.SizeOf();
        long count = input.Length;
        byte[] source = Pack(input, fromSize);
        // The same dtype is a copy (Precision.Convert's contract), not a round trip through binary32, which would
        // quiet a signalling NaN.
        byte[] expected = from == to ? source : Pack([.. input.Select(b => (uint)PrecisionReference.Convert(b, from, to))], toSize);

        using DeviceBuffer src = backend.Allocate(source.Length);
        using DeviceBuffer dst = backend.Allocate(count * toSize + GuardBytes);
        backend.Write(src, 0, source);
        foreach (byte poison in (byte[])[0xFF, 0x00])
        {
            var back = new byte[count * toSize + GuardBytes];
            Array.Fill(back, poison);
            backend.Write(dst, 0, back);
            backend.Convert(src, from, dst, to, count);
            backend.Read(dst, 0, back);

            int firstGuardChange = Array.FindIndex(back, (int)(count * toSize), b => b != poison);
            Assert.True(firstGuardChange < 0, $"{from} -> {to}: guard byte {firstGuardChange - count * toSize} after the output was written");
            if (!back.AsSpan(0, (int)(count * toSize)).SequenceEqual(expected)) Fail(input, back, expected, from, to, poison);
        }
    }

    private static byte[] Pack(uint[] bits, int size)
    {
        var bytes = new byte[bits.Length * size];
        for (int i = 0; i < bits.Length; i++)
            if (size == 4) BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), bits[i]);
            else BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (ushort)bits[i]);
        return bytes;
    }

    private static void Fail(uint[] input, byte[] actual, byte[] expected, DType from, DType to, byte poison)
    {
        int size = to.SizeOf();
        var lines = new List<string>();
        int wrong = 0;
        for (int i = 0; i < input.Length; i++)
        {
            ulong got = size == 4 ? BitConverter.ToUInt32(actual, i * 4) : BitConverter.ToUInt16(actual, i * 2);
            ulong want = size == 4 ? BitConverter.ToUInt32(expected, i * 4) : BitConverter.ToUInt16(expected, i * 2);
            if (got == want) continue;
            if (wrong++ < 8) lines.Add($"[{i}] 0x{input[i]:X} -> 0x{got:X} (reference 0x{want:X})");
        }
        Assert.Fail($"{from} -> {to} (poison 0x{poison:X2}): {wrong} of {input.Length} elements differ, first: {string.Join("; ", lines)}");
    }
}

/// <summary><see cref="PrecisionBackendTests"/> on the first OpenCL device (PoCL in CI).</summary>
public sealed class OpenClPrecisionTests : PrecisionBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);
}

/// <summary><see cref="PrecisionBackendTests"/> on the first CUDA device; skipped (visibly) where there is none.</summary>
public sealed class CudaPrecisionTests : PrecisionBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
