using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/moments.cl</c> in ILGPU C#: the device half of Moments.Update — the batch's column sums, its rows centred
/// block by block, and the compensated accumulation of the scatter blocks Linalg.Syrk makes of them.
/// </summary>
/// <remarks>
/// Math: Knuth's TwoSum (<see cref="TwoSum"/>; Ogita, Rump and Oishi 2005, Algorithm 3.1), six rounded adds, nothing
/// fused, reassociated or branched, so every device and the CPU backend compute the same bits.
/// moments_column_sums_*: per chunk c (the group row, <c>Grid.IdxY</c>) and column e, the cascade over the chunk's rows
/// in order from hi = lo = +0, <c>(hi, err) = TwoSum(hi, x[row(r), e]); lo = lo + err</c>, stored as the pair
/// <c>sums[2 (c * columns + e)]</c>, <c>[... + 1]</c>; row(r) = index[r] when flags bit 0 is set; with flags bit 1,
/// <c>row_flags[row] = 1</c> for rows holding NaN or ±Inf (a plain store of the same value by every writer).
/// moments_centre_*: <c>out[r, j] = x[row(r), column + j] - pivot[column + j]</c>, r the group row, widening exact.
/// moments_compensated_add: <c>(hi[i], err) = TwoSum(hi[i], s[i]); lo[i] = lo[i] + err</c>; with start != 0,
/// <c>hi[i] = s[i], lo[i] = +0</c> without reading either.
/// Launch: the 2-D kernels stride along columns in dimension 0 (any groups of any size) with one group row per chunk or
/// output row in dimension 1; the compensated add is 1-D grid-stride. Bounds: every thread checks e &lt; columns,
/// j &lt; width, i &lt; count; a row from index outside [0, batch_rows) is never read but counts as a NaN in every
/// column (sums) or gives a NaN output row (centre); centre also writes NaN past row_elements.
/// </remarks>
internal static class Moments
{
    /// <summary>The NaN that stands in for a row outside the batch (MOMENTS_QUIET_NAN).</summary>
    private const uint QuietNaN = 0x7FC00000u;

    [Entry("moments_column_sums_f32", typeof(uint), typeof(F32))]
    [Entry("moments_column_sums_f16", typeof(ushort), typeof(F16))]
    [Entry("moments_column_sums_bf16", typeof(ushort), typeof(BF16))]
    public static void ColumnSums<TX, TFormat>(ArrayView<TX> x, long batch_rows, long columns, ArrayView<long> index, long count,
        uint flags, long chunk_rows, ArrayView<float> sums, ArrayView<uint> row_flags)
        where TX : unmanaged where TFormat : struct, IFloatFormat<TX>
    {
        long chunk = Grid.IdxY;
        long begin = chunk * chunk_rows;
        long end = begin + chunk_rows < count ? begin + chunk_rows : count;
        for (long e = Dialect.GlobalIndex; e < columns; e += Dialect.GridStride)
        {
            float hi = 0.0f, lo = 0.0f;
            for (long r = begin; r < end; r++)
            {
                long row = (flags & 1u) != 0u ? index[r] : r;
                uint bits = QuietNaN;
                if (row >= 0 && row < batch_rows)
                {
                    bits = default(TFormat).SingleBits(x[row * columns + e]);
                    if ((flags & 2u) != 0u && (bits & 0x7F800000u) == 0x7F800000u) row_flags[row] = 1u;
                }
                hi = TwoSum(hi, Dialect.AsFloat(bits), out float err);
                lo = Dialect.AddRn(lo, err);
            }
            sums[2 * (chunk * columns + e)] = hi;
            sums[2 * (chunk * columns + e) + 1] = lo;
        }
    }

    [Entry("moments_centre_f32", typeof(uint), typeof(F32))]
    [Entry("moments_centre_f16", typeof(ushort), typeof(F16))]
    [Entry("moments_centre_bf16", typeof(ushort), typeof(BF16))]
    public static void Centre<TX, TFormat>(ArrayView<TX> x, long batch_rows, long row_elements, ArrayView<long> index, uint use_index,
        long first, long column, long width, ArrayView<float> pivot, ArrayView<float> @out)
        where TX : unmanaged where TFormat : struct, IFloatFormat<TX>
    {
        long r = Grid.IdxY;
        long row = use_index != 0u ? index[first + r] : first + r;
        bool inRange = row >= 0 && row < batch_rows;
        for (long j = Dialect.GlobalIndex; j < width; j += Dialect.GridStride)
        {
            float value = Dialect.AsFloat(QuietNaN);
            if (inRange && column + j < row_elements)
                value = Dialect.AddRn(default(TFormat).Widen(x[row * row_elements + column + j]), -pivot[column + j]);
            @out[r * width + j] = value;
        }
    }

    [Entry("moments_compensated_add")]
    public static void CompensatedAdd(ArrayView<float> hi, ArrayView<float> lo, ArrayView<float> s, long count, uint start)
    {
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride)
        {
            if (start != 0u)
            {
                hi[i] = s[i];
                lo[i] = 0.0f;
                continue;
            }
            hi[i] = TwoSum(hi[i], s[i], out float err);
            lo[i] = Dialect.AddRn(lo[i], err);
        }
    }

    /// <summary>Knuth's TwoSum (<c>nt_two_sum</c>): returns t = fl(a + b) with a + b = t + err exactly, barring overflow.</summary>
    private static float TwoSum(float a, float b, out float err)
    {
        float t = Dialect.AddRn(a, b);
        float z = Dialect.AddRn(t, -a);
        err = Dialect.AddRn(Dialect.AddRn(a, -Dialect.AddRn(t, -z)), Dialect.AddRn(b, -z));
        return t;
    }
}
