using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace NativeTensor.Tests.Core;

public sealed class BFloat16Tests
{
    /// <summary>
    /// Round to nearest, ties to even, worked out in double from the two neighbouring BFloat16 values, so it
    /// shares nothing with the bit trick under test. Past the largest finite value the upper neighbour is
    /// 2^128, as IEEE rounding with an unbounded exponent says, which rounds to infinity.
    /// </summary>
    private static ushort RoundNearestEven(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        uint truncated = bits & 0xFFFF0000;
        if ((bits & 0xFFFF) == 0) return (ushort)(truncated >> 16);
        double lower = BitConverter.UInt32BitsToSingle(truncated);
        uint upperBits = truncated + 0x10000;
        double upper = (upperBits & 0x7F800000) == 0x7F800000 ? Math.CopySign(Math.Pow(2, 128), x) : BitConverter.UInt32BitsToSingle(upperBits);
        double below = Math.Abs(x - lower), above = Math.Abs(upper - x);
        bool takeUpper = above < below || (above == below && ((truncated >> 16) & 1) == 1);
        return (ushort)((takeUpper ? upperBits : truncated) >> 16);
    }

    [Property(MaxTest = 20000)]
    public void Finite_values_round_to_nearest_even(uint bits)
    {
        float x = BitConverter.UInt32BitsToSingle(bits);
        if (float.IsNaN(x)) return;
        Assert.Equal(RoundNearestEven(x), BFloat16.FromSingle(x).Bits);
    }

    [Theory]
    [InlineData(0x3F808000u, 0x3F80)] // tie, lower is even: stays
    [InlineData(0x3F818000u, 0x3F82)] // tie, lower is odd: rounds up to even
    [InlineData(0x3F808001u, 0x3F81)] // just above the tie
    [InlineData(0x7F7FFFFFu, 0x7F80)] // float.MaxValue rounds to +Inf
    [InlineData(0xFF7FFFFFu, 0xFF80)] // and -float.MaxValue to -Inf
    [InlineData(0x7F7F7FFFu, 0x7F7F)] // just below the overflow tie stays finite
    [InlineData(0x00000001u, 0x0000)] // the smallest subnormal rounds to +0
    [InlineData(0x00008000u, 0x0000)] // a subnormal tie rounds to even (0)
    [InlineData(0x00018000u, 0x0002)] // a subnormal tie rounds to even (2)
    [InlineData(0x807FFFFFu, 0x8080)] // the largest negative subnormal rounds up into the normals
    public void Edge_cases_round_as_ieee_says(uint bits, int expected) =>
        Assert.Equal((ushort)expected, BFloat16.FromSingle(BitConverter.UInt32BitsToSingle(bits)).Bits);

    [Theory]
    [InlineData(0x00000000u, 0x0000)]
    [InlineData(0x80000000u, 0x8000)]
    [InlineData(0x7F800000u, 0x7F80)]
    [InlineData(0xFF800000u, 0xFF80)]
    public void Zeros_and_infinities_are_kept(uint bits, int expected) =>
        Assert.Equal((ushort)expected, BFloat16.FromSingle(BitConverter.UInt32BitsToSingle(bits)).Bits);

    /// <summary>The bits of every binary32 NaN: a nonzero significand under either sign.</summary>
    public static class NanBits
    {
        public static Arbitrary<uint> Bits() =>
            (from significand in Gen.Choose(1, 0x7FFFFF)
             from sign in Gen.Elements(0u, 0x80000000u)
             select sign | 0x7F800000u | (uint)significand).ToArbitrary();
    }

    [Property(Arbitrary = [typeof(NanBits)], MaxTest = 5000)]
    public void Every_nan_stays_a_quiet_nan_with_its_sign_and_top_payload(uint bits)
    {
        BFloat16 b = BFloat16.FromSingle(BitConverter.UInt32BitsToSingle(bits));
        Assert.True(b.IsNaN);
        Assert.True(float.IsNaN(b.ToSingle()));
        Assert.Equal(0x0040, b.Bits & 0x0040);                    // quiet
        Assert.Equal((bits & 0x80000000u) >> 16, (uint)(b.Bits & 0x8000));   // sign kept
        Assert.Equal((bits >> 16) & 0x3F, (uint)(b.Bits & 0x3F));  // the payload bits that fit are kept
    }

    [Fact]
    public void Widening_is_exact_and_round_trips_every_bfloat16()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            BFloat16 b = BFloat16.FromBits((ushort)bits);
            float f = b.ToSingle();
            Assert.Equal((uint)bits << 16, BitConverter.SingleToUInt32Bits(f));
            if (!b.IsNaN) Assert.Equal(b, BFloat16.FromSingle(f));
        }
    }

    [Fact]
    public void Named_values_hold_their_bits()
    {
        Assert.Equal(float.PositiveInfinity, BFloat16.PositiveInfinity.ToSingle());
        Assert.Equal(float.NegativeInfinity, BFloat16.NegativeInfinity.ToSingle());
        Assert.True(BFloat16.NaN.IsNaN);
        Assert.Equal(3.3895313892515355e38, BFloat16.MaxValue.ToSingle(), 0);
        Assert.Equal(1f, ((BFloat16)1f).ToSingle());
        Assert.Equal(2, DType.BFloat16.SizeOf());
    }
}
