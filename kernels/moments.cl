/*
 * moments.cl — the device half of Moments.Update (src/Tensors/Ops/Moments.Device.cs): the batch's column sums, its
 * rows centred block by block, and the compensated accumulation of the Float32 scatter blocks that Linalg.Syrk makes
 * of them, so a batch on a device never crosses the bus; only O(columns) sums and the final O(d²) pairs do.
 *
 * Math:    TwoSum (Knuth; Ogita, Rump and Oishi, "Accurate sum and dot product", SIAM J. Sci. Comput. 26(6), 2005,
 *          Algorithm 3.1): for binary32 a and b, t = fl(a + b), z = fl(t - a), e = fl(fl(a - fl(t - z)) + fl(b - z))
 *          gives a + b = t + e exactly, barring overflow (and, on a device that flushes subnormals, up to 2^-126 lost
 *          to a flushed e). Six ADD_RN, nothing fused or reassociated, no branch, so every device and the CPU backend
 *          (MomentsKernels.TwoSum) compute the same bits.
 *   moments_column_sums_<t>: per chunk c and column e, the cascade over the chunk's rows in order, from hi = lo = +0:
 *          (hi, err) = TwoSum(hi, x[row(r), e]); lo = fl(lo + err). That is ORO's Sum2 (their Algorithm 4.4) without its
 *          final rounding: |hi + lo - Σ x| <= γ_(m-1)² Σ |x| for a chunk of m rows (their Proposition 4.5 less the
 *          u |s| of the last fl(hi + lo); γ_k = k u / (1 - k u), u = 2^-24). sums[2 (c * columns + e)] = hi and
 *          sums[2 (c * columns + e) + 1] = lo; the host adds every chunk's pair in double.
 *          Chunk c holds rows r in [c * chunk_rows, min(count, (c + 1) * chunk_rows)); row(r) = index[r] when flags bit
 *          0 is set, else r. When flags bit 1 is set, row_flags[row(r)] = 1 for every row holding a NaN or ±Inf: a
 *          plain store, the same value by every writer (no atomics, no order); the host zeroes the flags first. A
 *          non-finite value propagates into its column's pair as NaN (an Inf becomes NaN through t - z).
 *   moments_centre_<t>: out[r, j] = fl(x[row(r), column + j] - pivot[column + j]) for r < taken, j < width, with
 *          row(r) = index[first + r] when use_index != 0, else first + r. 16-bit inputs widen exactly (convert.h), so
 *          the subtraction is the only rounding, as in MomentsKernels.Centre on the host.
 *   moments_compensated_add: for i < count, (hi[i], err) = TwoSum(hi[i], s[i]); lo[i] = fl(lo[i] + err): the same
 *          cascade, one term per call, over whole arrays (Moments passes all d x d entries of a scatter block: the
 *          blocks are exactly symmetric, so both triangles stay the same bits, and the host then reads two contiguous
 *          arrays). With start != 0, hi[i] = s[i] and lo[i] = +0 without reading either, which is TwoSum(+0, s) and
 *          saves zeroing the pair before a batch's first block.
 * Dtypes:  batch elements as raw bits (f32 as uint, f16 and bf16 as ushort), widened by convert.h's integer code;
 *          sums, pivot, out, hi, lo, s are float; index is i64 (rows of the batch); row_flags is uint.
 * Indices: every element offset is formed in i64, so batches past 2^31 elements address correctly.
 * Launch:  moments_column_sums_*: 2-D; dimension 0 any number of groups of any size over columns (adjacent threads
 *          read adjacent columns of a row: coalesced), a grid-stride loop over e; dimension 1 exactly one group row per
 *          chunk (LSIZE(1) = 1, NGROUPS(1) = chunks), so GROUP(1) is the chunk.
 *          moments_centre_*: 2-D; dimension 0 any groups over j (a grid-stride loop), dimension 1 one group row per
 *          output row r (NGROUPS(1) = taken, LSIZE(1) = 1).
 *          moments_compensated_add: 1-D, any groups of any size, a grid-stride loop as in precision.cl.
 * Bounds:  every thread checks e < columns, j < width, i < count before each load and store; a chunk's rows stop at
 *          count. A row from index outside [0, batch_rows) is never read: it counts as a NaN in every column (sums) or
 *          gives a NaN output row (centre), so a bad list poisons the result visibly instead of reading out of bounds.
 *          centre also checks column + j < row_elements and writes NaN past it. The host checks every buffer's size.
 */
#include "dialect.h"
#include "convert.h"

#define MOMENTS_ELEM_f32 uint
#define MOMENTS_ELEM_f16 ushort
#define MOMENTS_ELEM_bf16 ushort
#define MOMENTS_WIDEN_f32(x) (x)
#define MOMENTS_WIDEN_f16(x) nt_f16_to_f32(x)
#define MOMENTS_WIDEN_bf16(x) nt_bf16_to_f32(x)

#define MOMENTS_QUIET_NAN 0x7FC00000u

/* (t, *err) with a + b = t + *err exactly: Knuth's TwoSum, every operation ADD_RN. */
INLINE float nt_two_sum(float a, float b, float* err)
{
    const float t = ADD_RN(a, b);
    const float z = ADD_RN(t, -a);
    *err = ADD_RN(ADD_RN(a, -ADD_RN(t, -z)), ADD_RN(b, -z));
    return t;
}

/* NaN or ±Inf: the exponent field all ones (binary32 bits, widened exactly from 16-bit inputs). */
INLINE uint nt_moments_non_finite(uint bits) { return (uint)((bits & 0x7F800000u) == 0x7F800000u); }

#define COLUMN_SUMS_KERNEL(T)                                                                                     \
    KERNEL void moments_column_sums_##T(GLOBAL const MOMENTS_ELEM_##T* RESTRICT x, i64 batch_rows, i64 columns,  \
                                        GLOBAL const i64* RESTRICT index, i64 count, uint flags, i64 chunk_rows,  \
                                        GLOBAL float* RESTRICT sums, GLOBAL uint* RESTRICT row_flags)            \
    {                                                                                                             \
        const i64 chunk = GROUP(1);                                                                               \
        const i64 begin = chunk * chunk_rows;                                                                     \
        const i64 end = begin + chunk_rows < count ? begin + chunk_rows : count;                                  \
        const i64 step = (i64)LSIZE(0) * NGROUPS(0);                                                              \
        for (i64 e = GID(0); e < columns; e += step)                                                              \
        {                                                                                                         \
            float hi = 0.0f, lo = 0.0f;                                                                           \
            for (i64 r = begin; r < end; r++)                                                                     \
            {                                                                                                     \
                const i64 row = (flags & 1u) ? index[r] : r;                                                      \
                uint bits = MOMENTS_QUIET_NAN;                                                                    \
                if (row >= 0 && row < batch_rows)                                                                 \
                {                                                                                                 \
                    bits = MOMENTS_WIDEN_##T(x[row * columns + e]);                                               \
                    if ((flags & 2u) && nt_moments_non_finite(bits)) row_flags[row] = 1u;                        \
                }                                                                                                 \
                float err;                                                                                        \
                hi = nt_two_sum(hi, AS_FLOAT(bits), &err);                                                        \
                lo = ADD_RN(lo, err);                                                                             \
            }                                                                                                     \
            sums[2 * (chunk * columns + e)] = hi;                                                                 \
            sums[2 * (chunk * columns + e) + 1] = lo;                                                             \
        }                                                                                                         \
    }

#define CENTRE_KERNEL(T)                                                                                          \
    KERNEL void moments_centre_##T(GLOBAL const MOMENTS_ELEM_##T* RESTRICT x, i64 batch_rows, i64 row_elements,   \
                                   GLOBAL const i64* RESTRICT index, uint use_index, i64 first, i64 column,       \
                                   i64 width, GLOBAL const float* RESTRICT pivot, GLOBAL float* RESTRICT out)     \
    {                                                                                                             \
        const i64 r = GROUP(1);                                                                                   \
        const i64 row = use_index ? index[first + r] : first + r;                                                 \
        const int in_range = row >= 0 && row < batch_rows;                                                        \
        const i64 step = (i64)LSIZE(0) * NGROUPS(0);                                                              \
        for (i64 j = GID(0); j < width; j += step)                                                                \
        {                                                                                                         \
            float value = AS_FLOAT(MOMENTS_QUIET_NAN);                                                            \
            if (in_range && column + j < row_elements)                                                            \
                value = ADD_RN(AS_FLOAT(MOMENTS_WIDEN_##T(x[row * row_elements + column + j])), -pivot[column + j]); \
            out[r * width + j] = value;                                                                           \
        }                                                                                                         \
    }

COLUMN_SUMS_KERNEL(f32) COLUMN_SUMS_KERNEL(f16) COLUMN_SUMS_KERNEL(bf16)

CENTRE_KERNEL(f32) CENTRE_KERNEL(f16) CENTRE_KERNEL(bf16)

KERNEL void moments_compensated_add(GLOBAL float* RESTRICT hi, GLOBAL float* RESTRICT lo, GLOBAL const float* RESTRICT s,
                                    i64 count, uint start)
{
    const i64 step = (i64)LSIZE(0) * NGROUPS(0);
    for (i64 i = GID(0); i < count; i += step)
    {
        if (start)
        {
            hi[i] = s[i];
            lo[i] = 0.0f;
            continue;
        }
        float err;
        const float t = nt_two_sum(hi[i], s[i], &err);
        hi[i] = t;
        lo[i] = ADD_RN(lo[i], err);
    }
}
