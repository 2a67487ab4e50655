using System.Runtime.CompilerServices;

namespace NativeTensor;

/// <summary>
/// Brain floating point: sign, 8 exponent bits and 7 mantissa bits, i.e. the top half of a binary32.
/// Widening to float is exact. Narrowing from float rounds to nearest, ties to even; a NaN stays a NaN
/// (its quiet bit is set, so a payload held only in the low 16 bits cannot turn into infinity); ±Inf and
/// ±0 are kept, and finite values too large for the format round to ±Inf as IEEE rounding says.
/// </summary>
public readonly struct BFloat16 : IEquatable<BFloat16>, IComparable<BFloat16>
{
    /// <summary>The raw 16 bits.</summary>
    public readonly ushort Bits;

    private BFloat16(ushort bits) => Bits = bits;

    /// <summary>Reinterprets 16 raw bits as a BFloat16.</summary>
    public static BFloat16 FromBits(ushort bits) => new(bits);

    /// <summary>Positive infinity.</summary>
    public static BFloat16 PositiveInfinity => new(0x7F80);
    /// <summary>Negative infinity.</summary>
    public static BFloat16 NegativeInfinity => new(0xFF80);
    /// <summary>The canonical quiet NaN.</summary>
    public static BFloat16 NaN => new(0x7FC0);
    /// <summary>The largest finite value, 3.3895314e38.</summary>
    public static BFloat16 MaxValue => new(0x7F7F);
    /// <summary>The smallest positive subnormal, 9.18355e-41.</summary>
    public static BFloat16 Epsilon => new(0x0001);

    /// <summary>True when the value is a NaN.</summary>
    public bool IsNaN => (Bits & 0x7FFF) > 0x7F80;

    /// <summary>Rounds <paramref name="value"/> to the nearest BFloat16, ties to even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BFloat16 FromSingle(float value) => new(RoundBits(BitConverter.SingleToUInt32Bits(value)));

    /// <summary>
    /// The rounding rule on raw binary32 bits, shared by the scalar and SIMD converters:
    /// add 0x7FFF plus the lowest kept bit, then truncate. A NaN instead keeps its top bits with the quiet bit set.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort RoundBits(uint bits)
    {
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) return (ushort)((bits >> 16) | 0x0040);
        uint lsb = (bits >> 16) & 1;
        return (ushort)((bits + 0x7FFF + lsb) >> 16);
    }

    /// <summary>Widens exactly to float.</summary>
    public float ToSingle() => BitConverter.UInt32BitsToSingle((uint)Bits << 16);

    /// <summary>Rounds to nearest even.</summary>
    public static explicit operator BFloat16(float value) => FromSingle(value);
    /// <summary>Exact widening.</summary>
    public static explicit operator float(BFloat16 value) => value.ToSingle();

    /// <summary>Bitwise equality, so NaN equals the same NaN; use <see cref="ToSingle"/> for IEEE comparison.</summary>
    public bool Equals(BFloat16 other) => Bits == other.Bits;
    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);
    /// <inheritdoc/>
    public override int GetHashCode() => Bits;
    /// <summary>Orders by value; NaN sorts first, as <see cref="float.CompareTo(float)"/> does.</summary>
    public int CompareTo(BFloat16 other) => ToSingle().CompareTo(other.ToSingle());
    /// <inheritdoc/>
    public override string ToString() => ToSingle().ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}
