namespace NativeTensor.Reference;

/// <summary>
/// The specification of <see cref="Precision"/> conversions as plain scalar code on raw bits. Narrowing is worked
/// out in double from the exact value (which quantum the target format has at that magnitude, then round half to
/// even), not by bit tricks, so it shares nothing with the kernels it checks.
/// </summary>
/// <remarks>
/// Rules, for every backend: narrowing rounds to nearest, ties to even, subnormals included; a finite value at or
/// beyond the largest finite value plus half a unit in the last place becomes ±Inf; ±0 and ±Inf are kept; a NaN
/// stays a NaN with its sign, its quiet bit set and the top payload bits that fit. Widening is exact on bits: a
/// NaN's payload is shifted up unchanged (a signalling NaN stays signalling).
/// </remarks>
public static class PrecisionReference
{
    /// <summary>binary32 bits to binary16 bits.</summary>
    public static ushort SingleToHalf(uint bits) => Narrow(bits, exponentBits: 5, mantissaBits: 10);

    /// <summary>binary32 bits to bfloat16 bits.</summary>
    public static ushort SingleToBFloat16(uint bits) => Narrow(bits, exponentBits: 8, mantissaBits: 7);

    /// <summary>binary16 bits to binary32 bits, exactly.</summary>
    public static uint HalfToSingle(ushort bits)
    {
        uint sign = (uint)(bits & 0x8000) << 16;
        int exponent = (bits >> 10) & 0x1F;
        uint mantissa = bits & 0x3FFu;
        if (exponent == 0x1F) return sign | 0x7F800000 | (mantissa << 13);
        if (exponent == 0 && mantissa == 0) return sign;
        // value = mantissa * 2^-24 for subnormals, (1024 + mantissa) * 2^(exponent - 25) for normals: exact in double.
        double value = exponent == 0 ? mantissa * Math.Pow(2, -24) : (1024 + mantissa) * Math.Pow(2, exponent - 25);
        return sign | BitConverter.SingleToUInt32Bits((float)value);
    }

    /// <summary>bfloat16 bits to binary32 bits, exactly (the top half of a binary32).</summary>
    public static uint BFloat16ToSingle(ushort bits) => (uint)bits << 16;

    /// <summary>
    /// Any supported pair, through binary32 when neither side is binary32 (exact, so still one rounding). The same
    /// dtype on both sides is a copy: the bits, NaN payloads included, are kept as they are.
    /// </summary>
    public static ulong Convert(ulong bits, DType from, DType to)
    {
        if (from == to) return bits;
        uint single = from switch
        {
            DType.Float32 => (uint)bits,
            DType.Float16 => HalfToSingle((ushort)bits),
            DType.BFloat16 => BFloat16ToSingle((ushort)bits),
            _ => throw new ArgumentOutOfRangeException(nameof(from), from, "not a floating-point DType"),
        };
        return to switch
        {
            DType.Float32 => single,
            DType.Float16 => SingleToHalf(single),
            DType.BFloat16 => SingleToBFloat16(single),
            _ => throw new ArgumentOutOfRangeException(nameof(to), to, "not a floating-point DType"),
        };
    }

    /// <summary>Rounds binary32 bits into a binary format with the given field widths (16 bits in all).</summary>
    private static ushort Narrow(uint bits, int exponentBits, int mantissaBits)
    {
        uint sign = (bits >> 16) & 0x8000;
        uint infinity = ((1u << exponentBits) - 1) << mantissaBits;
        uint magnitude = bits & 0x7FFFFFFF;
        if (magnitude > 0x7F800000)
        {
            // NaN: quiet bit (the mantissa's top bit) set, top payload bits kept.
            uint payload = (magnitude & 0x7FFFFF) >> (23 - mantissaBits);
            return (ushort)(sign | infinity | (1u << (mantissaBits - 1)) | payload);
        }
        if (magnitude == 0x7F800000) return (ushort)(sign | infinity);

        double value = BitConverter.UInt32BitsToSingle(magnitude);
        if (value == 0) return (ushort)sign;
        int bias = (1 << (exponentBits - 1)) - 1;
        int minExponent = 1 - bias;
        // The quantum (unit in the last place) at this magnitude; below the normal range it is fixed.
        int exponent = Math.Max(Math.ILogB(value), minExponent);
        double quantum = Math.ScaleB(1.0, exponent - mantissaBits);
        double units = Math.Round(value / quantum, MidpointRounding.ToEven);   // exact: a power-of-two division
        double rounded = units * quantum;
        int maxExponent = bias;
        if (rounded >= Math.ScaleB(1.0, maxExponent + 1)) return (ushort)(sign | infinity);
        if (rounded < Math.ScaleB(1.0, minExponent))
            return (ushort)(sign | (uint)(rounded / Math.ScaleB(1.0, minExponent - mantissaBits)));   // subnormal (or 0)
        int e = Math.ILogB(rounded);
        double fraction = rounded / Math.ScaleB(1.0, e) - 1;
        return (ushort)(sign | ((uint)(e + bias) << mantissaBits) | (uint)(fraction * (1 << mantissaBits)));
    }
}
