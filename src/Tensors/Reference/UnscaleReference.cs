namespace NativeTensor.Reference;

/// <summary>The scalar truth of the Unscale op family (<see cref="Precision.UnscaleAndCheck"/>, <see cref="Precision.FindNonFinite"/>).</summary>
public static class UnscaleReference
{
    /// <summary>
    /// One element of <see cref="Precision.UnscaleAndCheck"/>: <paramref name="bits"/> (binary32, or bfloat16 in the
    /// low 16 bits) times <paramref name="inverseScale"/>, as bits of the same dtype; <paramref name="nonFinite"/> says
    /// whether the input was NaN or ±Inf.
    /// </summary>
    /// <remarks>
    /// The product of two binary32 values has at most 48 significant bits and an exponent within [-298, 256], so it is
    /// exact in double; the cast to float is then its one correct rounding (to nearest even, subnormals and overflow to
    /// ±Inf included). A BFloat16 input widens exactly and the binary32 product is rounded once more, by
    /// <see cref="PrecisionReference.SingleToBFloat16"/>. A NaN input is not multiplied: hardware disagrees on which NaN a product of a NaN
    /// returns (x86 quiets the operand, CUDA returns a canonical NaN), so the rule is stated here: the input with its
    /// quiet bit set, sign and payload kept.
    /// </remarks>
    public static uint Unscale(uint bits, DType dtype, float inverseScale, out bool nonFinite)
    {
        uint single = dtype switch
        {
            DType.Float32 => bits,
            DType.BFloat16 => PrecisionReference.BFloat16ToSingle((ushort)bits),
            _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unscaling is defined for Float32 and BFloat16"),
        };
        float value = BitConverter.UInt32BitsToSingle(single);
        nonFinite = !float.IsFinite(value);
        uint product = float.IsNaN(value)
            ? single | 0x0040_0000
            : BitConverter.SingleToUInt32Bits((float)((double)value * inverseScale));
        return dtype == DType.Float32 ? product : PrecisionReference.SingleToBFloat16(product);
    }
}
