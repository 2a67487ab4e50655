using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/precision.cl</c> in ILGPU C#: the six conversions among Float32, Float16 and BFloat16, bit-exact with
/// <c>PrecisionReference</c> by the integer rules of <see cref="Convert"/>.
/// </summary>
/// <remarks>
/// <c>dst[i] = (to) src[i]</c> for i in [0, count). Launch: 1-D, any number of groups of any size; each thread walks a
/// grid-stride loop from its global index, so neighbouring threads take neighbouring elements. Bounds: every index is
/// checked against <c>count</c> before its load and store; i64 indices, so counts past 2^31 address correctly.
/// </remarks>
internal static class Precision
{
    [Entry("f32_to_f16")]
    public static void SingleToHalf(ArrayView<uint> src, ArrayView<ushort> dst, long count)
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) dst[i] = Convert.SingleToHalf(src[i]);
    }

    [Entry("f32_to_bf16")]
    public static void SingleToBFloat16(ArrayView<uint> src, ArrayView<ushort> dst, long count)
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) dst[i] = Convert.SingleToBFloat16(src[i]);
    }

    [Entry("f16_to_f32")]
    public static void HalfToSingle(ArrayView<ushort> src, ArrayView<uint> dst, long count)
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) dst[i] = Convert.HalfToSingle(src[i]);
    }

    [Entry("bf16_to_f32")]
    public static void BFloat16ToSingle(ArrayView<ushort> src, ArrayView<uint> dst, long count)
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) dst[i] = Convert.BFloat16ToSingle(src[i]);
    }

    [Entry("f16_to_bf16")]
    public static void HalfToBFloat16(ArrayView<ushort> src, ArrayView<ushort> dst, long count)
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) dst[i] = Convert.HalfToBFloat16(src[i]);
    }

    [Entry("bf16_to_f16")]
    public static void BFloat16ToHalf(ArrayView<ushort> src, ArrayView<ushort> dst, long count)
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride) dst[i] = Convert.BFloat16ToHalf(src[i]);
    }
}
