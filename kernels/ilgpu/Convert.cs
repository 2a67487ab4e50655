namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// The integer-exact conversions among Float32, Float16 and BFloat16 of <c>kernels/convert.h</c>, one definition per
/// direction for every ILGPU kernel that converts (Precision's conversions, the optimizer steps' working copies,
/// Linalg's staging, Windows' gather-converts).
/// </summary>
/// <remarks>
/// Bit-exact with <c>PrecisionReference</c>: narrowing rounds to nearest, ties to even, subnormals included; a finite
/// value at or past the largest finite value plus half an ulp becomes ±Inf; ±0 and ±Inf are kept; a NaN stays a NaN
/// with its sign, its quiet bit set and the top payload bits that fit. Widening is exact on bits. Integer arithmetic on
/// raw bits only, for the reason convert.h gives: hardware converters canonicalise NaNs (and <c>System.Half</c> casts
/// would lean on the host's), float adds may flush subnormals. Float32 travels as <c>uint</c>, the 16-bit formats as
/// <c>ushort</c>.
/// </remarks>
internal static class Convert
{
    /// <summary>binary32 -> binary16, round to nearest even (<c>nt_f32_to_f16</c>).</summary>
    public static ushort SingleToHalf(uint bits)
    {
        uint sign = (bits >> 16) & 0x8000u;
        uint a = bits & 0x7FFFFFFFu;
        if (a > 0x7F800000u) return (ushort)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));   // NaN: quiet, top payload kept
        if (a >= 0x477FF000u) return (ushort)(sign | 0x7C00u);                          // >= 65520 rounds to Inf (or is Inf)
        if (a >= 0x38800000u)                                                            // normal in binary16 (>= 2^-14)
            return (ushort)(sign | ((a - 0x38000000u + 0x0FFFu + ((a >> 13) & 1u)) >> 13));
        // Below 2^-14 the result counts 2^-24 quanta: the significand m (implicit bit set) shifted right by
        // s = 126 - e, rounded half to even from the dropped bits. e <= 101 is below half the smallest subnormal.
        uint e = a >> 23;
        if (e <= 101u) return (ushort)sign;
        uint m = (a & 0x7FFFFFu) | 0x800000u;
        int s = (int)(126u - e);
        return (ushort)(sign | ((m + ((1u << (s - 1)) - 1u) + ((m >> s) & 1u)) >> s));
    }

    /// <summary>binary16 -> binary32, exact (<c>nt_f16_to_f32</c>); a NaN's payload is shifted up unchanged.</summary>
    public static uint HalfToSingle(ushort bits)
    {
        uint sign = ((uint)bits & 0x8000u) << 16;
        uint em = (uint)bits & 0x7FFFu;
        if (em >= 0x7C00u) return sign | 0x7F800000u | ((em & 0x3FFu) << 13);          // Inf, NaN
        if (em >= 0x0400u) return sign | ((em << 13) + 0x38000000u);                      // normal: rebias 15 -> 127
        if (em == 0u) return sign;
        // Subnormal m * 2^-24: shifting m left by clz(m) - 8 puts its leading one at bit 23, where the exponent's add
        // (field 134 - clz(m), hence 133) absorbs it.
        int z = Dialect.Clz32(em);
        return sign | (((uint)(133 - z) << 23) + (em << (z - 8)));
    }

    /// <summary>binary32 -> bfloat16, round to nearest even (<c>nt_f32_to_bf16</c>, <c>BFloat16.RoundBits</c>).</summary>
    /// <remarks>Integer only, so binary32 subnormals round exactly, and the carry of the largest finite values runs into the exponent and gives Inf.</remarks>
    public static ushort SingleToBFloat16(uint bits)
    {
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (ushort)((bits >> 16) | 0x0040u); // NaN: quiet, top payload kept
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>bfloat16 -> binary32, exact: the top half of a binary32 (<c>nt_bf16_to_f32</c>).</summary>
    public static uint BFloat16ToSingle(ushort bits) => (uint)bits << 16;

    /// <summary>binary16 -> bfloat16 through binary32 (exact), so it rounds once.</summary>
    public static ushort HalfToBFloat16(ushort bits) => SingleToBFloat16(HalfToSingle(bits));

    /// <summary>bfloat16 -> binary16 through binary32 (exact), so it rounds once.</summary>
    public static ushort BFloat16ToHalf(ushort bits) => SingleToHalf(BFloat16ToSingle(bits));
}

/// <summary>
/// A storage format of binary32 values: how its raw bits (<typeparamref name="TBits"/>, the element a kernel's buffer
/// holds) widen to a float exactly and how a float narrows back to them as convert.h rounds. Kernels generic over the
/// format call these on <c>default(TFormat)</c>, so one method body serves f32, f16 and bf16 buffers.
/// </summary>
internal interface IFloatFormat<TBits> where TBits : unmanaged
{
    /// <summary>The binary32 bits of the value the bits hold, exactly (a NaN's payload shifted up unchanged).</summary>
    uint SingleBits(TBits bits);

    /// <summary>The value the bits hold, exactly.</summary>
    float Widen(TBits bits);

    /// <summary>The value rounded to this format's bits (nearest even, NaN kept); exact for binary32.</summary>
    TBits Narrow(float value);

    /// <summary>Binary32 bits rounded to this format's bits by convert.h's integer rules, never through a float register.</summary>
    TBits FromSingleBits(uint bits);
}

/// <summary>binary32 as its <c>uint</c> bits (<c>ELEM_f32</c>).</summary>
internal readonly struct F32 : IFloatFormat<uint>
{
    public uint SingleBits(uint bits) => bits;

    public float Widen(uint bits) => Dialect.AsFloat(bits);

    public uint Narrow(float value) => Dialect.AsUInt(value);

    public uint FromSingleBits(uint bits) => bits;
}

/// <summary>binary16 as its <c>ushort</c> bits (<c>ELEM_f16</c>).</summary>
internal readonly struct F16 : IFloatFormat<ushort>
{
    public uint SingleBits(ushort bits) => Convert.HalfToSingle(bits);

    public float Widen(ushort bits) => Dialect.AsFloat(Convert.HalfToSingle(bits));

    public ushort Narrow(float value) => Convert.SingleToHalf(Dialect.AsUInt(value));

    public ushort FromSingleBits(uint bits) => Convert.SingleToHalf(bits);
}

/// <summary>bfloat16 as its <c>ushort</c> bits (<c>ELEM_bf16</c>).</summary>
internal readonly struct BF16 : IFloatFormat<ushort>
{
    public uint SingleBits(ushort bits) => Convert.BFloat16ToSingle(bits);

    public float Widen(ushort bits) => Dialect.AsFloat(Convert.BFloat16ToSingle(bits));

    public ushort Narrow(float value) => Convert.SingleToBFloat16(Dialect.AsUInt(value));

    public ushort FromSingleBits(uint bits) => Convert.SingleToBFloat16(bits);
}

/// <summary>
/// One conversion between two storage formats, as convert.h performs it: widen exactly to binary32 bits, then round once
/// into the target (binary16 to bfloat16 and back therefore round once, as <c>PrecisionReference.Convert</c> does).
/// </summary>
internal static class Conversion<TFrom, TFromFormat, TTo, TToFormat>
    where TFrom : unmanaged where TFromFormat : struct, IFloatFormat<TFrom>
    where TTo : unmanaged where TToFormat : struct, IFloatFormat<TTo>
{
    public static TTo Apply(TFrom bits) => default(TToFormat).FromSingleBits(default(TFromFormat).SingleBits(bits));
}
