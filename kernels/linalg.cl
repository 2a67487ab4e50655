/*
 * linalg.cl — dense matrix products on one local-memory tiled SGEMM core: matmul_<a>_<b> (GEMM) and syrk_<a> (A^T A).
 *
 * Math:    matmul:  C[i, j] = alpha * sum_p op(A)[i, p] * op(B)[p, j]   (+ beta * C[i, j] when beta != 0)
 *                   op(A) is [m, k]: A is stored [m, k], or [k, m] when flags bit 0 (transpose A) is set;
 *                   op(B) is [k, n]: B is stored [k, n], or [n, k] when flags bit 1 (transpose B) is set.
 *          syrk:    C[i, j] = alpha * sum_p A[p, i] * A[p, j]   (+ beta * C[max(i, j), min(i, j)] when beta != 0)
 *                   A is [rows, columns], C is [columns, columns]. Only the lower triangle (i >= j) is computed; each
 *                   value is stored at [i, j] and at [j, i], so the two triangles are the same bits. With beta != 0
 *                   only the lower triangle of the old C is read (BLAS ssyrk with uplo = lower, in row-major terms):
 *                   an old C that is not symmetric cannot make the mirror differ.
 *          Each element is one chain of fused multiply-adds over p = 0, 1, ..., k - 1 in order, starting from +0
 *          (FMA of dialect.h: one rounding per term), then s = alpha * sum (MUL_RN), then, only when beta != 0,
 *          FMA(beta, C, s). Hence |C - exact| <= gamma_(k+2) |alpha| sum_p |a_ip b_pj| + u |beta C|, with u = 2^-24 and
 *          gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1), as long
 *          as no product or partial sum is subnormal (a device may flush those: OpenCL without CL_FP_DENORM; NVRTC's
 *          defaults keep them). The tiling changes where operands are fetched from, never the order of the sum, so a
 *          result does not depend on the tile an element falls in, and matmul and syrk agree bit for bit.
 *          Staged elements past m, n or k are +0; past k both operands are 0 and fma(0, 0, s) = s (a -0 sum becomes
 *          +0). Rows and columns past m or n are computed from zeros and never stored.
 *          beta == 0 never reads C, so a NaN there does not propagate (BLAS). alpha and beta arrive as binary32 bits.
 * Tiling:  a group of NT_THREADS = 256 threads computes one NT_TILE x NT_TILE = 64 x 64 tile of C. Per slice of
 *          NT_SLICE = 16 values of p, it stages op(A)[tile rows, slice] and op(B)[slice, tile columns] in local memory,
 *          widened to float (f16 by convert.h's integer nt_f16_to_f32, bf16 by a 16-bit shift: both exact), then each
 *          thread (tx, ty) = (lid % 16, lid / 16) accumulates a 4 x 4 register block: rows ty + 16 i, columns
 *          tx + 16 j, i, j in [0, 4), so neighbouring threads store neighbouring columns. Transposes are only in how a
 *          tile is staged (nt_stage_*): each of its 1024 elements is read by thread e % 256 for e = lid + 256 s, with e
 *          running along whichever index is contiguous in memory, so a row of threads reads consecutive addresses
 *          whether or not the operand is transposed; local rows are NT_TILE + 1 floats apart, so the transposing
 *          stores (p running fastest) fall in different banks.
 * Names:   matmul_<a>_<b> for a, b in f32, f16, bf16 (nine kernels; both transposes are run-time flags, uniform in a
 *          group, so they cost a branch per staged element, not a kernel per combination); syrk_<a> (three).
 * Dtypes:  A and B as raw bits (f32 as uint, f16 and bf16 as ushort); C is float. m, n, k, rows, columns are int
 *          (below 2^31, as the host validated); every offset is formed in i64, so m * k past 2^31 addresses correctly.
 * Launch:  1-D: LSIZE(0) = 256 exactly (GROUP_SIZE), one group per tile. matmul: ceil(m / 64) * ceil(n / 64) groups,
 *          group q taking tile row q / ceil(n / 64) and tile column q % ceil(n / 64). syrk: T(T + 1) / 2 groups for
 *          T = ceil(columns / 64), group q taking the q-th tile of the lower block triangle in row order (0,0), (1,0),
 *          (1,1), (2,0), ... A diagonal tile is computed whole and stores only its i >= j half and that half's mirror.
 *          Local memory: 2 * 16 * 65 floats = 8320 bytes per group.
 * Bounds:  a staged element is read only when its row (or column) < m (n, columns) and its p < k (rows); a C element is
 *          read (beta != 0) and written only when i < m and j < n (syrk: j <= i < columns). Every thread reaches every
 *          barrier: the bounds decide loads and stores, never the loop trip count, which is the same in the group.
 */
#include "dialect.h"
#include "convert.h"

#define NT_TILE 64                 /* rows and columns of C per group */
#define NT_SLICE 16                /* values of p per staged slice */
#define NT_THREADS 256             /* threads per group: 16 x 16, each owning a 4 x 4 block of the tile */
#define NT_PITCH (NT_TILE + 1)     /* floats between two p rows of a staged tile */

#define ELEM_f32 uint
#define ELEM_f16 ushort
#define ELEM_bf16 ushort
#define WIDEN_f32(x) AS_FLOAT(x)
#define WIDEN_f16(x) AS_FLOAT(nt_f16_to_f32(x))
#define WIDEN_bf16(x) AS_FLOAT(nt_bf16_to_f32(x))

/*
 * Stages the NT_TILE x NT_SLICE block of an operand X starting at (outer0, k0) into tile[p * NT_PITCH + o], widened;
 * o is the outer index (a row of op(A), or a column of op(B)) and p the summation index. Element (o, p) of X is
 * x[o * ld + p] when p runs along memory (k_contiguous: A, or B transposed) and x[p * ld + o] otherwise. Outside
 * outer_count x k_count the tile holds +0.
 */
#define STAGE(T)                                                                                                  \
    INLINE void nt_stage_##T(LOCAL_PTR(float) tile, GLOBAL const ELEM_##T* RESTRICT x, i64 ld, int k_contiguous,  \
                             i64 outer0, i64 outer_count, i64 k0, i64 k_count, int lid)                            \
    {                                                                                                              \
        for (int s = 0; s < NT_TILE * NT_SLICE / NT_THREADS; s++)                                                  \
        {                                                                                                          \
            const int e = lid + s * NT_THREADS;                                                                    \
            const int o = k_contiguous ? e / NT_SLICE : e % NT_TILE;                                               \
            const int p = k_contiguous ? e % NT_SLICE : e / NT_TILE;                                               \
            const i64 go = outer0 + o, gp = k0 + p;                                                                \
            float value = 0.0f;                                                                                    \
            if (go < outer_count && gp < k_count) value = WIDEN_##T(x[k_contiguous ? go * ld + gp : gp * ld + go]); \
            tile[p * NT_PITCH + o] = value;                                                                        \
        }                                                                                                          \
    }

STAGE(f32)
STAGE(f16)
STAGE(bf16)

/* acc[4 i + j] += a[ty + 16 i] * b[tx + 16 j] over one staged slice, p in order, one fused multiply-add each. */
INLINE void nt_multiply_slice(float* acc, LOCAL_PTR(const float) a, LOCAL_PTR(const float) b, int tx, int ty)
{
#pragma unroll
    for (int p = 0; p < NT_SLICE; p++)
    {
        float left[4], right[4];
#pragma unroll
        for (int i = 0; i < 4; i++) left[i] = a[p * NT_PITCH + ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; j++) right[j] = b[p * NT_PITCH + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[4 * i + j] = FMA(left[i], right[j], acc[4 * i + j]);
    }
}

/* alpha * sum, plus beta times the old value only when beta != 0 (so a NaN in an unread C stays out). */
INLINE float nt_scale(float sum, float alpha, float beta, GLOBAL const float* old)
{
    const float s = MUL_RN(alpha, sum);
    return beta == 0.0f ? s : FMA(beta, *old, s);
}

/* matmul's store: this thread's 4 x 4 block of the tile at (row0, col0), inside m x n. */
INLINE void nt_store_product(const float* acc, GLOBAL float* c, i64 row0, i64 col0, int m, int n, float alpha, float beta,
                             int tx, int ty)
{
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        const i64 row = row0 + ty + 16 * i;
        if (row >= m) continue;
#pragma unroll
        for (int j = 0; j < 4; j++)
        {
            const i64 col = col0 + tx + 16 * j;
            if (col >= n) continue;
            GLOBAL float* out = c + row * n + col;
            *out = nt_scale(acc[4 * i + j], alpha, beta, out);
        }
    }
}

/* syrk's store: of this thread's block, the elements with col <= row < d, each to [row, col] and to [col, row]. */
INLINE void nt_store_symmetric(const float* acc, GLOBAL float* c, i64 row0, i64 col0, int d, float alpha, float beta,
                               int tx, int ty)
{
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        const i64 row = row0 + ty + 16 * i;
        if (row >= d) continue;
#pragma unroll
        for (int j = 0; j < 4; j++)
        {
            const i64 col = col0 + tx + 16 * j;
            if (col > row) continue;
            GLOBAL float* lower = c + row * d + col;
            const float value = nt_scale(acc[4 * i + j], alpha, beta, lower);
            *lower = value;
            if (col != row) c[col * d + row] = value;
        }
    }
}

/*
 * The tile row of the q-th tile of the lower block triangle: row r holds q in [r (r + 1) / 2, (r + 1) (r + 2) / 2).
 * A binary32 square root guesses it; exact integer steps correct the guess, whatever its rounding.
 */
INLINE i64 nt_triangle_row(i64 q)
{
    i64 r = (i64)((SQRT_RN(8.0f * (float)q + 1.0f) - 1.0f) * 0.5f);
    while (r > 0 && r * (r + 1) / 2 > q) r--;
    while ((r + 1) * (r + 2) / 2 <= q) r++;
    return r;
}

#define MATMUL_KERNEL(TA, TB)                                                                                      \
    KERNEL GROUP_SIZE(NT_THREADS) void matmul_##TA##_##TB(GLOBAL const ELEM_##TA* RESTRICT a,                      \
                                                          GLOBAL const ELEM_##TB* RESTRICT b,                      \
                                                          GLOBAL float* RESTRICT c, int m, int n, int k,           \
                                                          uint flags, uint alpha_bits, uint beta_bits)             \
    {                                                                                                              \
        LOCAL float a_tile[NT_SLICE * NT_PITCH];                                                                   \
        LOCAL float b_tile[NT_SLICE * NT_PITCH];                                                                   \
        const int lid = LID(0), tx = lid % 16, ty = lid / 16;                                                      \
        const i64 tiles_n = ((i64)n + NT_TILE - 1) / NT_TILE;                                                      \
        const i64 row0 = GROUP(0) / tiles_n * NT_TILE, col0 = GROUP(0) % tiles_n * NT_TILE;                        \
        /* A [m, k] has p along memory, A^T stored [k, m] does not; B [k, n] does not, B^T stored [n, k] does. */  \
        const int a_along = (flags & 1u) == 0u, b_along = (flags & 2u) != 0u;                                      \
        const i64 lda = a_along ? k : m, ldb = b_along ? k : n;                                                    \
        float acc[16];                                                                                             \
        for (int e = 0; e < 16; e++) acc[e] = 0.0f;                                                                \
        for (i64 k0 = 0; k0 < k; k0 += NT_SLICE)                                                                   \
        {                                                                                                          \
            nt_stage_##TA(a_tile, a, lda, a_along, row0, m, k0, k, lid);                                           \
            nt_stage_##TB(b_tile, b, ldb, b_along, col0, n, k0, k, lid);                                           \
            BARRIER();                                                                                             \
            nt_multiply_slice(acc, a_tile, b_tile, tx, ty);                                                        \
            BARRIER();                                                                                             \
        }                                                                                                          \
        nt_store_product(acc, c, row0, col0, m, n, AS_FLOAT(alpha_bits), AS_FLOAT(beta_bits), tx, ty);             \
    }

/* op(A) = A^T and op(B) = A, both stored [rows, columns] with the tile's index along memory. */
#define SYRK_KERNEL(T)                                                                                             \
    KERNEL GROUP_SIZE(NT_THREADS) void syrk_##T(GLOBAL const ELEM_##T* RESTRICT a, GLOBAL float* RESTRICT c,       \
                                                int rows, int columns, uint alpha_bits, uint beta_bits)            \
    {                                                                                                              \
        LOCAL float a_tile[NT_SLICE * NT_PITCH];                                                                   \
        LOCAL float b_tile[NT_SLICE * NT_PITCH];                                                                   \
        const int lid = LID(0), tx = lid % 16, ty = lid / 16;                                                      \
        const i64 q = GROUP(0), tile_row = nt_triangle_row(q);                                                     \
        const i64 row0 = tile_row * NT_TILE, col0 = (q - tile_row * (tile_row + 1) / 2) * NT_TILE;                 \
        float acc[16];                                                                                             \
        for (int e = 0; e < 16; e++) acc[e] = 0.0f;                                                                \
        for (i64 k0 = 0; k0 < rows; k0 += NT_SLICE)                                                                \
        {                                                                                                          \
            nt_stage_##T(a_tile, a, columns, 0, row0, columns, k0, rows, lid);                                     \
            nt_stage_##T(b_tile, a, columns, 0, col0, columns, k0, rows, lid);                                     \
            BARRIER();                                                                                             \
            nt_multiply_slice(acc, a_tile, b_tile, tx, ty);                                                        \
            BARRIER();                                                                                             \
        }                                                                                                          \
        nt_store_symmetric(acc, c, row0, col0, columns, AS_FLOAT(alpha_bits), AS_FLOAT(beta_bits), tx, ty);        \
    }

MATMUL_KERNEL(f32, f32) MATMUL_KERNEL(f32, f16) MATMUL_KERNEL(f32, bf16)
MATMUL_KERNEL(f16, f32) MATMUL_KERNEL(f16, f16) MATMUL_KERNEL(f16, bf16)
MATMUL_KERNEL(bf16, f32) MATMUL_KERNEL(bf16, f16) MATMUL_KERNEL(bf16, bf16)

SYRK_KERNEL(f32) SYRK_KERNEL(f16) SYRK_KERNEL(bf16)
