using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/precision.cl</c> in ILGPU C#: the six conversions among Float32, Float16 and BFloat16, bit-exact with
/// <c>PrecisionReference</c> by the integer rules of <see cref="NativeTensor.Kernels.Ilgpu.Convert"/>: one generic kernel, one entry per direction.
/// </summary>
/// <remarks>
/// <c>dst[i] = (to) src[i]</c> for i in [0, count). Launch: 1-D, any number of groups of any size; each thread walks a
/// grid-stride loop from its global index, so neighbouring threads take neighbouring elements. Bounds: every index is
/// checked against <c>count</c> before its load and store; i64 indices, so counts past 2^31 address correctly.
/// </remarks>
internal static class Precision
{
    [Entry("f32_to_f16", typeof(uint), typeof(F32), typeof(ushort), typeof(F16))]
    [Entry("f32_to_bf16", typeof(uint), typeof(F32), typeof(ushort), typeof(BF16))]
    [Entry("f16_to_f32", typeof(ushort), typeof(F16), typeof(uint), typeof(F32))]
    [Entry("bf16_to_f32", typeof(ushort), typeof(BF16), typeof(uint), typeof(F32))]
    [Entry("f16_to_bf16", typeof(ushort), typeof(F16), typeof(ushort), typeof(BF16))]
    [Entry("bf16_to_f16", typeof(ushort), typeof(BF16), typeof(ushort), typeof(F16))]
    public static void ConvertElements<TFrom, TFromFormat, TTo, TToFormat>(ArrayView<TFrom> src, ArrayView<TTo> dst, long count)
        where TFrom : unmanaged where TFromFormat : struct, IFloatFormat<TFrom>
        where TTo : unmanaged where TToFormat : struct, IFloatFormat<TTo>
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride)
            dst[i] = Conversion<TFrom, TFromFormat, TTo, TToFormat>.Apply(src[i]);
    }
}
