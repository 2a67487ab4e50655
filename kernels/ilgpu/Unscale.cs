using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/unscale.cl</c> in ILGPU C#: the loss-scaling step fused with its non-finite check, and the check alone,
/// bit-exact with <c>PrecisionReference.Unscale</c>.
/// </summary>
/// <remarks>
/// Math: in place, <c>data[i] = data[i] * inverse_scale</c>, the correctly rounded binary32 product (subnormals kept,
/// overflow to ±Inf); BFloat16 widens exactly, multiplies in binary32 and rounds back by <see cref="Convert"/>. A NaN is
/// not multiplied (which NaN a product returns differs between x86 and NVIDIA) but becomes itself with the quiet bit set.
/// Flag: <c>found[0] = 1</c> when any input element was NaN or ±Inf (an overflowing product does not count). The host
/// resets it once per list and reads it once; every writer stores the same 1, so a plain store suffices, at most one
/// per thread. Launch and bounds: as <see cref="Precision"/>, a grid-stride loop checking <c>i &lt; count</c>.
/// </remarks>
internal static class Unscale
{
    [Entry("unscale_f32")]
    public static void UnscaleSingle(ArrayView<uint> data, long count, uint scale_bits, ArrayView<uint> found)
    {
        float scale = Dialect.AsFloat(scale_bits);
        uint seen = 0u;
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride)
        {
            uint bits = data[i];
            seen |= NonFinite(bits);
            data[i] = Scaled(bits, scale);
        }
        if (seen != 0u) found[0] = 1u;
    }

    [Entry("unscale_bf16")]
    public static void UnscaleBFloat16(ArrayView<ushort> data, long count, uint scale_bits, ArrayView<uint> found)
    {
        float scale = Dialect.AsFloat(scale_bits);
        uint seen = 0u;
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride)
        {
            uint bits = Convert.BFloat16ToSingle(data[i]);
            seen |= NonFinite(bits);
            data[i] = Convert.SingleToBFloat16(Scaled(bits, scale));
        }
        if (seen != 0u) found[0] = 1u;
    }

    // The check alone, read-only: for optimizers that fold the unscale into their own step, and for Float16 gradients.
    // One element per loop turn: the bytes read, not the instructions, bound these.

    [Entry("find_non_finite_f32")]
    public static void FindNonFiniteSingle(ArrayView<uint> data, long count, ArrayView<uint> found)
    {
        uint seen = 0u;
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) seen |= NonFinite(data[i]);
        if (seen != 0u) found[0] = 1u;
    }

    [Entry("find_non_finite_f16")]
    public static void FindNonFiniteHalf(ArrayView<ushort> data, long count, ArrayView<uint> found)
    {
        uint seen = 0u;
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) seen |= (data[i] & 0x7C00u) == 0x7C00u ? 1u : 0u;
        if (seen != 0u) found[0] = 1u;
    }

    [Entry("find_non_finite_bf16")]
    public static void FindNonFiniteBFloat16(ArrayView<ushort> data, long count, ArrayView<uint> found)
    {
        uint seen = 0u;
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) seen |= (data[i] & 0x7F80u) == 0x7F80u ? 1u : 0u;
        if (seen != 0u) found[0] = 1u;
    }

    /// <summary>binary32 bits times the scale (<c>nt_unscale</c>); a NaN stays itself, quieted.</summary>
    private static uint Scaled(uint bits, float scale) =>
        (bits & 0x7FFFFFFFu) > 0x7F800000u ? bits | 0x00400000u : Dialect.AsUInt(Dialect.MulRn(Dialect.AsFloat(bits), scale));

    /// <summary>1 for NaN or ±Inf (the exponent field all ones), else 0.</summary>
    private static uint NonFinite(uint bits) => (bits & 0x7FFFFFFFu) >= 0x7F800000u ? 1u : 0u;
}
