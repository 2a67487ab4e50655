using System.Runtime.CompilerServices;

namespace NativeTensor.Cpu;

/// <summary>
/// CPU kernels of <see cref="NativeTensor.Precision"/>: the scalar rules on raw bits, shared by the fallback path
/// and the tails of the vector paths. Same results as <see cref="Reference.PrecisionReference"/>, by other means:
/// integer bit arithmetic here, exact double arithmetic there.
/// </summary>
internal static unsafe class PrecisionKernels
{
    /// <summary>binary32 to binary16, round to nearest even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToHalf(uint bits)
    {
        uint sign = (bits >> 16) & 0x8000;
        uint a = bits & 0x7FFF_FFFF;
        if (a > 0x7F80_0000) return (ushort)(sign | 0x7E00 | (a >> 13));            // NaN: quiet, top payload kept
        if (a >= 0x477F_F000) return (ushort)(sign | 0x7C00);                        // >= 65520: rounds to Inf (or is Inf)
        if (a >= 0x3880_0000)                                                        // normal in binary16 (>= 2^-14)
            return (ushort)(sign | ((a - 0x3800_0000 + 0x0FFF + ((a >> 13) & 1)) >> 13));
        // Subnormal or zero: adding 0.5 puts the value's 2^-24 quanta in the low mantissa bits of the sum, and the
        // hardware's round-to-nearest-even does the rounding; 0x0400 comes out as the smallest normal, correctly.
        float sum = BitConverter.UInt32BitsToSingle(a) + 0.5f;
        return (ushort)(sign | (BitConverter.SingleToUInt32Bits(sum) - 0x3F00_0000));
    }

    /// <summary>binary16 to binary32, exact on bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint HalfToSingle(ushort half)
    {
        uint sign = (uint)(half & 0x8000) << 16;
        uint em = half & 0x7FFFu;
        if (em >= 0x7C00) return sign | 0x7F80_0000 | ((em & 0x3FF) << 13);           // Inf, NaN (payload shifted, unchanged)
        if (em >= 0x0400) return sign | ((em << 13) + 0x3800_0000);                    // normal: rebias 15 -> 127
        // Subnormal or zero: the mantissa m is m * 2^-24; as a float, (2^-1 + m * 2^-24) - 2^-1, both steps exact.
        float value = BitConverter.UInt32BitsToSingle(0x3F00_0000 | em) - 0.5f;
        return sign | BitConverter.SingleToUInt32Bits(value);
    }

    /// <summary>Converts <paramref name="count"/> elements; <paramref name="from"/> == <paramref name="to"/> copies.</summary>
    public static void Convert(byte* source, DType from, byte* destination, DType to, long count, SimdWidth width)
    {
        if (from == to)
        {
            BlockCopy.Copy(source, destination, count * from.SizeOf(), width);
            return;
        }
        ConvertScalar(source, from, destination, to, 0, count);
    }

    /// <summary>Elements [start, end) one at a time: the fallback, and the tails of the vector loops.</summary>
    internal static void ConvertScalar(byte* source, DType from, byte* destination, DType to, long start, long end)
    {
        for (long i = start; i < end; i++)
        {
            uint single = from switch
            {
                DType.Float32 => ((uint*)source)[i],
                DType.Float16 => HalfToSingle(((ushort*)source)[i]),
                _ => (uint)((ushort*)source)[i] << 16,
            };
            switch (to)
            {
                case DType.Float32: ((uint*)destination)[i] = single; break;
                case DType.Float16: ((ushort*)destination)[i] = SingleToHalf(single); break;
                default: ((ushort*)destination)[i] = BFloat16.RoundBits(single); break;
            }
        }
    }
}
