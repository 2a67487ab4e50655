/*
 * cuda/attention.cu — the tensor-core forward and backward (dq, dk and dv) of scaled dot-product attention for
 * BFloat16 and Float16 inputs (sm_80 and newer): FlashAttention-2's schedule, with mma.sync m16n8k16 for every product
 * and the softmax in registers.
 *
 * Math:    out[b, h, i, :] = Σ_j P_ij v[b, g, j, :],  P_ij = exp(s_ij - L_i),  s_ij = scale q[b, h, i, :] · k[b, g, j, :],
 *          L_i = log Σ_j exp(s_ij) (natural log), over the keys j that query i sees, g = h / (Hq / Hkv). Query i sits at
 *          p = keys - queries + i; key j is visible iff (!causal || j <= p) && (window == 0 || j > p - window). A query
 *          that sees no key gets 0 and L = -inf. (src/Tensors/Ops/Attention.cs, Reference/AttentionReference.cs.)
 *          Scores are kept in base 2: x_ij = s_ij * (scale * log2 e) (two binary32 roundings), the online softmax runs
 *          on x with running maximum m_i and sum l_i = Σ_j 2^(x_ij - m_i) in binary32 over the unrounded weights, and
 *          L_i = ln 2 (m_i + log2 l_i). The one step the Float32 path does not take: the weights 2^(x_ij - m_i) <= 1
 *          enter the P V product rounded to the input dtype (cvt.rn: bf16 relative error <= 2^-8, f16 <= 2^-11 plus an
 *          absolute 2^-25 below f16's normal range), while l_i sums them unrounded; so each output is
 *          Σ_j w_ij (1 + δ_ij) v_jd with |δ_ij| <= 2^-8 (bf16) or 2^-11 (f16), an extra error of at most that times
 *          Σ_j P_ij |v_jd| beyond the Float32 path's. q · k and P V accumulate in binary32 inside the mma (exact 16-bit
 *          products; the hardware's order of additions within one 16-term step). Exponentials are ex2.approx.f32 and
 *          the final log lg2.approx.f32 (about 2^-22 relative). out = o / l is one correctly rounded division, then
 *          rounded to the output dtype to nearest even (convert.h, bit-exact with the reference's conversions).
 * Backward: with delta_i = dO_i · O_i (the portable kernel of attention.cl, run first), P_ij = 2^(x_ij - L_i log2 e)
 *          recomputed in binary32, dP_ij = dO_i · v_j and dS_ij = P_ij (dP_ij - delta_i) (P and dS exactly 0 for a
 *          hidden pair, by selection): dq_i = scale Σ_j dS_ij k_j, dk_j = scale Σ_i dS_ij q_i and dv_j = Σ_i P_ij dO_i,
 *          the last two over every query head of the group. q k^T and dO v^T come from the mma as in the forward; P and
 *          dS enter their products rounded to the input dtype as P does in the forward (the same relative bound, times
 *          Σ |dS_ij| |k_j|, Σ |dS_ij| |q_i| and Σ P_ij |dO_i|), and the scale multiplies the binary32 sums once.
 * Tiling:  forward and dq: a group of 4 warps takes 64 consecutive queries of one (b, h); warp w owns queries 16 w ..
 *          16 w + 15, with q (and for dq, dO) as mma A fragments in registers for the whole call. Keys are visited in
 *          tiles of BC from the first key any of the group's queries sees to the last, so a causal or windowed call
 *          touches only tiles that intersect its visible band (O(N W) for a window W). Per tile, the group stages K
 *          and V [BC][DP] in shared memory (zero past head_dim and for keys past the band), then each warp whose band
 *          meets the tile computes S = Q K^T (ldmatrix, B fragments from K's rows), masks hidden keys only when the
 *          tile is not wholly visible to all its rows, and in the forward updates m and l, rescales its accumulators
 *          and adds P V (ldmatrix.trans from V's rows); in dq it also computes dP = dO V^T and adds dS K (ldmatrix.trans
 *          from K's rows). dk/dv: a group takes 64 consecutive keys of one (b, g), warp w keys 16 w .. 16 w + 15; K and
 *          V stay staged for the whole call, and for each query head of the group in order, tiles of BR queries from
 *          the first query that sees one of the group's keys to the last are staged (q, dO, L log2 e, delta); each
 *          warp computes S^T = K Q^T and dP^T = V dO^T, then adds P^T dO to dv and dS^T Q to dk (ldmatrix.trans from
 *          the staged dO and Q). Every sum runs in a fixed order (tiles in order, no atomics): the backward is the same
 *          bits run to run. Nothing [N, M] exists.
 * Index:   q, out, dO, dq [B, Hq, N, D] and lse, delta [B, Hq, N] dense; the forward's k, v stored [B, Hkv, key_rows, D],
 *          key j of a head at storage row (key_first + j) mod key_rows (a KV cache's ring read in place;
 *          0 <= key_first < key_rows, keys <= key_rows); the backward's k, v, dk, dv dense [B, Hkv, M, D]. Every
 *          offset is formed in i64.
 * Names:   attention_forward_<t>_d<DP> for t in bf16, f16 and DP in 32, 64, 96, 128, 192, 256 (BC 64 up to DP 128,
 *          then 32); attention_dq_<t>_d<DP> (BC 64 up to DP 64, then 32) and attention_dkdv_<t>_d<DP> (BR 32 up to
 *          DP 64, then 16) for DP in 32, 64, 96, 128: past 128, dk's and dv's accumulators and the staged tiles outgrow
 *          the registers and 48 KB of static shared memory, and the portable kernels run the backward. Each kernel
 *          serves head dimensions D <= DP (the host picks the smallest DP >= D); D need not be a multiple of anything.
 * Dtypes:  q, k, v, out, dO, dq, dk, dv as raw 16-bit bits (ushort), bf16 or f16 by the kernel's name; lse and delta
 *          float. Sizes are int (below 2^31, as the host validated); scale arrives as binary32 bits. flags: bit 0
 *          causal, bit 1 write lse (forward).
 * Launch:  1-D, exactly 128 threads per group (GROUP_SIZE). Forward and dq: B Hq ceil(N / 64) groups, group x takes
 *          head x / ceil(N / 64) and query block ceil(N / 64) - 1 - x % ceil(N / 64) (the heaviest causal blocks
 *          first). dk/dv: B Hkv ceil(M / 64) groups, group x takes key/value head x / ceil(M / 64) and key block
 *          x % ceil(M / 64). Shared memory (static): forward and dq 2 BC (DP + 8) ushorts for K and V and 64 BC for
 *          the exact path's rounded weights, at most 43008 bytes (forward, DP 128); dk/dv 2 * 64 (DP + 8) for K and V,
 *          2 BR (DP + 8) for Q and dO, 2 * 64 BR for the exact path's P^T and dS^T and 2 BR floats, at most 47744
 *          bytes (DP 128). Staged rows are DP + 8 elements apart, so the 8 rows an ldmatrix reads fall in different
 *          banks.
 * Bounds:  a key row is read only for 0 <= j < keys inside the group's band, a query row (q, dO, lse, delta) only for
 *          0 <= i < queries, an element only below head_dim (16-byte loads only when head_dim % 8 == 0 and the
 *          tensors are 16-byte aligned); outputs are written only for rows inside N (or M) and columns < head_dim.
 *          Every thread reaches every barrier: the loops' bounds are the group's.
 * Hidden:  keys no query of the group sees (queries no key of the group is seen by) are never read. A pair that some
 *          rows of a tile see and others do not enters their mma with weight +0 for the others, harmless unless the
 *          operand it multiplies is infinite or NaN (0 * inf is NaN): so staging notes any non-finite value of that
 *          operand (v in the forward, k in dq, q and dO in dk/dv; __syncthreads_or), and a warp whose tile is not
 *          wholly visible to it then sums lane by lane over the pairs each row sees (same rounded weights, FMA), never
 *          the hidden ones.
 */
#include "dialect.h"
#include "convert.h"
#include "cuda/warp_mma.h"

#define NT_THREADS 128            /* 4 warps */
#define NT_QUERIES 64             /* queries per group of the forward and dq: 16 per warp */
#define NT_KEYS 64                /* keys per group of dk, dv: 16 per warp */
#define NT_PAD 8                  /* elements past DP in each staged row (bank spread; 16-byte rows) */
#define NT_LOG2E 1.44269504088896340736f
#define NT_LN2 0.69314718055994530942f
#define NT_NEG_INF AS_FLOAT(0xFF800000u)

/* The keys query i sees: [*first, *last], empty when *first > *last. */
INLINE void nt_visible(i64 i, int queries, int keys, int causal, int window, i64* first, i64* last)
{
    const i64 p = (i64)keys - queries + i;
    const i64 from = p - window + 1;
    *first = window > 0 && from > 0 ? from : 0;
    *last = causal && p < keys - 1 ? p : (i64)keys - 1;
}

/* Elements c and c + 1 of a row at x (x points at element c), each 0 at or past d, as one 32-bit pair. */
INLINE uint nt_pair(const ushort* x, int c, int d)
{
    const uint lo = c < d ? (uint)x[0] : 0u;
    const uint hi = c + 1 < d ? (uint)x[1] : 0u;
    return lo | (hi << 16);
}

template <bool BF16>
INLINE void nt_mma(float* d, const uint* a, uint b0, uint b1)
{
    if (BF16) nt_mma_bf16(d, a, b0, b1);
    else nt_mma_f16(d, a, b0, b1);
}

template <bool BF16>
INLINE uint nt_pack(float lo, float hi) { return BF16 ? nt_pack_bf16(lo, hi) : nt_pack_f16(lo, hi); }

template <bool BF16>
INLINE ushort nt_round(float x) { return BF16 ? nt_f32_to_bf16(AS_UINT(x)) : nt_f32_to_f16(AS_UINT(x)); }

template <bool BF16>
INLINE float nt_widen(ushort x) { return AS_FLOAT(BF16 ? nt_bf16_to_f32(x) : nt_f16_to_f32(x)); }

/* 1 when either 16-bit half of w is an infinity or a NaN (all exponent bits set), else 0. */
template <bool BF16>
INLINE int nt_nonfinite(uint w)
{
    const uint lo = BF16 ? 0x7F80u : 0x7C00u, hi = lo << 16;
    return (int)((w & lo) == lo) | (int)((w & hi) == hi);
}

/*
 * Rows r0 .. r0 + ROWS - 1 of a head's block of 16-bit rows staged into tile[ROWS][DP + NT_PAD] by the group's
 * NT_THREADS threads, 16 bytes per thread and step: row r read from storage row (first + r0 + r) mod ring of base when
 * r0 + r <= last, zeros past last and at or past head_dim (16-byte loads when wide, else pair by pair). Returns nonzero
 * when an element this thread staged is an infinity or a NaN.
 */
template <int ROWS, int DP, bool BF16>
INLINE int nt_stage(ushort* tile, const ushort* base, i64 r0, i64 last, int head_dim, int ring, int first, bool wide, int lid)
{
    constexpr int CHUNKS = DP / 8;
    int nonfinite = 0;
    for (int e = lid; e < ROWS * CHUNKS; e += NT_THREADS)
    {
        const int r = e / CHUNKS, c = 8 * (e % CHUNKS);
        uint4 w = {0u, 0u, 0u, 0u};
        if (r0 + r <= last && c < head_dim)
        {
            i64 row = (i64)first + r0 + r;
            if (row >= ring) row -= ring;
            const ushort* x = base + row * head_dim + c;
            if (wide) w = *(const uint4*)x;
            else
            {
                w.x = nt_pair(x, c, head_dim), w.y = nt_pair(x + 2, c + 2, head_dim);
                w.z = nt_pair(x + 4, c + 4, head_dim), w.w = nt_pair(x + 6, c + 6, head_dim);
            }
        }
        *(uint4*)(tile + r * (DP + NT_PAD) + c) = w;
        nonfinite |= nt_nonfinite<BF16>(w.x) | nt_nonfinite<BF16>(w.y) | nt_nonfinite<BF16>(w.z) | nt_nonfinite<BF16>(w.w);
    }
    return nonfinite;
}

/* The A fragments of rows row0 .. row0 + 15 of a dense [rows][head_dim] block in global memory, zeros at or past rows
 * and head_dim: register r of a[s] holds row group + 8 (r & 1), columns 16 s + 2 quad + 8 (r >> 1) and the next. */
template <int DP>
INLINE void nt_global_rows(uint (*a)[4], const ushort* base, i64 row0, int rows, int head_dim, int group, int quad)
{
#pragma unroll
    for (int s = 0; s < DP / 16; s++)
#pragma unroll
        for (int r = 0; r < 4; r++)
        {
            const i64 row = row0 + group + 8 * (r & 1);
            const int col = 16 * s + 2 * quad + 8 * (r >> 1);
            a[s][r] = row < rows ? nt_pair(base + row * head_dim + col, col, head_dim) : 0u;
        }
}

/* The A fragments of the warp's 16 rows row0 .. row0 + 15 of tile[..][DP + NT_PAD], columns 16 s .. 16 s + 15 in a[s]:
 * ldmatrix matrix mi holds rows 8 (mi % 2) .. + 7 and columns 8 (mi / 2) .. + 7, as registers 0 .. 3 of A take them. */
template <int DP>
INLINE void nt_load_rows(uint (*a)[4], const ushort* tile, int row0, int lane)
{
    const int mi = lane >> 3;
#pragma unroll
    for (int s = 0; s < DP / 16; s++)
        nt_ldmatrix_x4(a[s], tile + (row0 + 8 * (mi & 1) + (lane & 7)) * (DP + NT_PAD) + 16 * s + 8 * (mi >> 1));
}

/* x += A B^T for the warp's 16 rows: A in fragments a[s] (columns 16 s ..), B rows 0 .. COLS - 1 of tile[..][DP + NT_PAD].
 * Per ldmatrix, matrix mi holds B rows 16 t + 8 (mi / 2) .. + 7 and columns 16 s + 8 (mi % 2) .. + 7, so registers 0, 1
 * are n-tile 2 t's B fragment and 2, 3 n-tile 2 t + 1's. Element e of n-tile n: row group + 8 (e / 2), B row
 * 8 n + 2 quad + e % 2. */
template <int DP, int COLS, bool BF16>
INLINE void nt_rows_by_tile(float (*x)[4], const uint (*a)[4], const ushort* tile, int lane)
{
    const int mi = lane >> 3;
#pragma unroll
    for (int t = 0; t < COLS / 16; t++)
#pragma unroll
        for (int s = 0; s < DP / 16; s++)
        {
            uint b[4];
            nt_ldmatrix_x4(b, tile + (16 * t + 8 * (mi >> 1) + (lane & 7)) * (DP + NT_PAD) + 16 * s + 8 * (mi & 1));
            nt_mma<BF16>(x[2 * t], a[s], b[0], b[1]);
            nt_mma<BF16>(x[2 * t + 1], a[s], b[2], b[3]);
        }
}

/* acc += W T for the warp's 16 rows: W (16 x K) in A fragments w[t] (columns 16 t ..), T rows 0 .. K - 1 of
 * tile[..][DP + NT_PAD]. Per ldmatrix.trans, matrix mi holds T rows 16 t + 8 (mi % 2) .. + 7 and columns
 * 16 s + 8 (mi / 2) .. + 7, so registers 0, 1 are n-tile 2 s's B fragment and 2, 3 n-tile 2 s + 1's. */
template <int DP, int K, bool BF16>
INLINE void nt_weights_by_tile(float (*acc)[4], const uint (*w)[4], const ushort* tile, int lane)
{
    const int mi = lane >> 3;
#pragma unroll
    for (int t = 0; t < K / 16; t++)
#pragma unroll
        for (int s = 0; s < DP / 16; s++)
        {
            uint b[4];
            nt_ldmatrix_x4_trans(b, tile + (16 * t + 8 * (mi & 1) + (lane & 7)) * (DP + NT_PAD) + 16 * s + 8 * (mi >> 1));
            nt_mma<BF16>(acc[2 * s], w[t], b[0], b[1]);
            nt_mma<BF16>(acc[2 * s + 1], w[t], b[2], b[3]);
        }
}

/* C fragments x (16 x COLS, n-tiles) rounded to the dtype as A fragments f: columns 16 t .. 16 t + 15 are n-tiles 2 t
 * (registers 0, 1) and 2 t + 1 (2, 3). */
template <int COLS, bool BF16>
INLINE void nt_to_a(uint (*f)[4], const float (*x)[4])
{
#pragma unroll
    for (int n = 0; n < COLS / 8; n++)
    {
        f[n / 2][2 * (n & 1)] = nt_pack<BF16>(x[n][0], x[n][1]);
        f[n / 2][2 * (n & 1) + 1] = nt_pack<BF16>(x[n][2], x[n][3]);
    }
}

/*
 * The exact path of nt_weights_by_tile, for a tile holding an infinity or a NaN that some of the warp's rows must not
 * see (0 * inf is NaN inside an mma): each lane adds, for its rows r (group + 8 r), the tile rows c0 + jj in
 * [lo[r], hi[r]] one FMA each in order, with the same rounded weights, passed through the warp's [16][K] slice of
 * scratch. The rows outside the range never enter.
 */
template <int DP, int K, bool BF16>
INLINE void nt_weights_by_tile_exact(float (*acc)[4], const uint (*w)[4], ushort* scratch, const ushort* tile, i64 c0,
                                     const i64* lo, const i64* hi, int group, int quad)
{
#pragma unroll
    for (int n = 0; n < K / 8; n++)
#pragma unroll
        for (int r = 0; r < 2; r++)
            *(uint*)(scratch + (group + 8 * r) * K + 8 * n + 2 * quad) = w[n / 2][2 * (n & 1) + r];
    __syncwarp();
    for (int jj = 0; jj < K; jj++)
    {
        const ushort* row = tile + jj * (DP + NT_PAD);
#pragma unroll
        for (int r = 0; r < 2; r++)
        {
            if (c0 + jj < lo[r] || c0 + jj > hi[r]) continue;
            const float weight = nt_widen<BF16>(scratch[(group + 8 * r) * K + jj]);
#pragma unroll
            for (int n = 0; n < DP / 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    acc[n][2 * r + e] = FMA(weight, nt_widen<BF16>(row[8 * n + 2 * quad + e]), acc[n][2 * r + e]);
        }
    }
    __syncwarp();
}

/* acc += W T with W = x (16 x K, C fragments) rounded to the dtype: on the tensor cores, or by the exact path when
 * exact (a tile holding an infinity or a NaN that some of the warp's rows must not see). */
template <int DP, int K, bool BF16>
INLINE void nt_add_weighted(float (*acc)[4], const float (*x)[4], bool exact, ushort* scratch, const ushort* tile, i64 c0,
                            const i64* lo, const i64* hi, int lane)
{
    uint w[K / 16][4];
    nt_to_a<K, BF16>(w, x);
    if (!exact) nt_weights_by_tile<DP, K, BF16>(acc, w, tile, lane);
    else nt_weights_by_tile_exact<DP, K, BF16>(acc, w, scratch, tile, c0, lo, hi, lane >> 2, lane & 3);
}

/*
 * Where a group of the forward or dq stands (1-D launch, NT_QUERIES queries per group): its head b Hq + h and that
 * head's key/value head; its query block, the heaviest causal blocks first; the band of keys its queries see
 * ([first, last]: visibility bounds are nondecreasing in i, so the first row gives the first key and the last row the
 * last); this warp's rows (w0 .. w0 + 15; rows past N, only in the last block, compute from zeros and are never
 * stored), the keys any of them sees ([warp_first, warp_last]) and all of them see ([whole_first, whole_last]); and
 * the keys each of this lane's rows (group + 8 r) sees.
 */
struct nt_query_block
{
    i64 head, kv_head, w0, first, last, warp_first, warp_last, whole_first, whole_last, row_first[2], row_last[2];
    bool active;
};

INLINE nt_query_block nt_query_block_at(int warp, int group, int queries, int keys, int query_heads, int kv_heads,
                                        int causal, int window)
{
    nt_query_block b;
    const i64 blocks = ((i64)queries + NT_QUERIES - 1) / NT_QUERIES;
    b.head = GROUP(0) / blocks;
    b.kv_head = b.head / query_heads * kv_heads + (b.head % query_heads) / (query_heads / kv_heads);
    const i64 q0 = (blocks - 1 - GROUP(0) % blocks) * NT_QUERIES;
    i64 unused;
    nt_visible(q0, queries, keys, causal, window, &b.first, &unused);
    nt_visible(q0 + NT_QUERIES - 1 < queries ? q0 + NT_QUERIES - 1 : (i64)queries - 1, queries, keys, causal, window,
               &unused, &b.last);
    b.w0 = q0 + 16 * warp;
    b.active = b.w0 < queries;
    const i64 w1 = b.w0 + 15 < queries ? b.w0 + 15 : (i64)queries - 1;
    nt_visible(b.w0, queries, keys, causal, window, &b.warp_first, &b.whole_last);
    nt_visible(w1, queries, keys, causal, window, &b.whole_first, &b.warp_last);
    for (int r = 0; r < 2; r++) nt_visible(b.w0 + group + 8 * r, queries, keys, causal, window, &b.row_first[r], &b.row_last[r]);
    return b;
}

/* Stores value(r, n, e) rounded to the dtype at row row0 + group + 8 r, column 8 n + 2 quad + e of a dense
 * [rows][head_dim] block (the C-fragment positions this lane holds), for rows < rows and columns < head_dim. */
template <int DP, bool BF16, typename Value>
INLINE void nt_store_rows(ushort* base, i64 row0, i64 rows, int head_dim, int group, int quad, Value value)
{
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const i64 row = row0 + group + 8 * r;
        if (row >= rows) continue;
#pragma unroll
        for (int n = 0; n < DP / 8; n++)
#pragma unroll
            for (int e = 0; e < 2; e++)
            {
                const int col = 8 * n + 2 * quad + e;
                if (col < head_dim) base[row * head_dim + col] = nt_round<BF16>(value(r, n, e));
            }
    }
}

template <int DP, int BC, bool BF16>
INLINE void nt_attention_forward(const ushort* RESTRICT q, const ushort* RESTRICT k, const ushort* RESTRICT v,
                                 ushort* RESTRICT out, float* RESTRICT lse, int queries, int keys, int head_dim,
                                 int query_heads, int kv_heads, int key_rows, int key_first, int window, uint flags,
                                 uint scale_bits)
{
    constexpr int PITCH = DP + NT_PAD;
    __shared__ __attribute__((aligned(16))) ushort ks[BC * PITCH];
    __shared__ __attribute__((aligned(16))) ushort vs[BC * PITCH];
    __shared__ __attribute__((aligned(16))) ushort ps[4 * 16 * BC];   /* each warp's rounded P, for the exact path */

    const int lid = LID(0), warp = lid >> 5, lane = lid & 31, group = lane >> 2, quad = lane & 3;
    const int causal = (int)(flags & 1u);
    const nt_query_block b = nt_query_block_at(warp, group, queries, keys, query_heads, kv_heads, causal, window);
    const ushort* kh = k + b.kv_head * key_rows * head_dim;
    const ushort* vh = v + b.kv_head * key_rows * head_dim;
    const float scale_log2 = MUL_RN(AS_FLOAT(scale_bits), NT_LOG2E);

    uint qf[DP / 16][4];
    nt_global_rows<DP>(qf, q + b.head * queries * head_dim, b.w0, queries, head_dim, group, quad);

    float o[DP / 8][4];
#pragma unroll
    for (int n = 0; n < DP / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {NT_NEG_INF, NT_NEG_INF}, l[2] = {0.0f, 0.0f};

    const bool wide = (head_dim & 7) == 0 && ((u64)k & 15u) == 0 && ((u64)v & 15u) == 0;
    for (i64 j0 = b.first; j0 <= b.last; j0 += BC)
    {
        /* Stage keys j0 .. j0 + BC - 1 of the band; zeros past the band and past head_dim. Note whether any staged
         * value is an infinity or a NaN. */
        nt_stage<BC, DP, BF16>(ks, kh, j0, b.last, head_dim, key_rows, key_first, wide, lid);
        const int nonfinite = nt_stage<BC, DP, BF16>(vs, vh, j0, b.last, head_dim, key_rows, key_first, wide, lid);
        const bool poisoned = __syncthreads_or(nonfinite) != 0;

        if (b.active && j0 <= b.warp_last && j0 + BC - 1 >= b.warp_first)
        {
            /* S = Q K^T. */
            float x[BC / 8][4];
#pragma unroll
            for (int n = 0; n < BC / 8; n++) x[n][0] = x[n][1] = x[n][2] = x[n][3] = 0.0f;
            nt_rows_by_tile<DP, BC, BF16>(x, qf, ks, lane);

            /* Scores in base 2; hidden keys -inf unless the tile is visible to every row of the warp. Element e of
             * n-tile n is row group + 8 (e / 2), key j0 + 8 n + 2 quad + e % 2. */
            const bool whole = j0 >= b.whole_first && j0 + BC - 1 <= b.whole_last;
            float top[2] = {NT_NEG_INF, NT_NEG_INF};
#pragma unroll
            for (int n = 0; n < BC / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    float y = MUL_RN(x[n][e], scale_log2);
                    const i64 j = j0 + 8 * n + 2 * quad + (e & 1);
                    if (!whole && (j < b.row_first[e >> 1] || j > b.row_last[e >> 1])) y = NT_NEG_INF;
                    x[n][e] = y;
                    top[e >> 1] = fmaxf(top[e >> 1], y);
                }

            /* Online softmax: the new maximum, the factor the old sums shrink by, then the weights. A row with no
             * visible key so far keeps m = -inf and subtracts 0, so its weights are 2^-inf = 0, not NaN. */
            float shift[2];
#pragma unroll
            for (int r = 0; r < 2; r++)
            {
                const float next = fmaxf(m[r], nt_quad_max(top[r]));
                shift[r] = next == NT_NEG_INF ? 0.0f : next;
                const float alpha = nt_exp2(m[r] - shift[r]);
                m[r] = next;
                l[r] = MUL_RN(l[r], alpha);
#pragma unroll
                for (int n = 0; n < DP / 8; n++)
                {
                    o[n][2 * r] = MUL_RN(o[n][2 * r], alpha);
                    o[n][2 * r + 1] = MUL_RN(o[n][2 * r + 1], alpha);
                }
            }
#pragma unroll
            for (int n = 0; n < BC / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    x[n][e] = nt_exp2(x[n][e] - shift[e >> 1]);
                    l[e >> 1] = ADD_RN(l[e >> 1], x[n][e]);
                }
            /* O += P V; when a value in the tile is infinite or NaN and some row of the warp must not see its key, the
             * exact path (rare: only such data takes it). */
            nt_add_weighted<DP, BC, BF16>(o, x, poisoned && !whole, ps + warp * 16 * BC, vs, j0, b.row_first, b.row_last, lane);
        }
        BARRIER();
    }

    if (!b.active) return;
    /* out = o / l, rounded to the dtype; l = 0 only for a row that saw no key (its o is 0): out 0, lse -inf. */
    const float sum[2] = {nt_quad_sum(l[0]), nt_quad_sum(l[1])};
    nt_store_rows<DP, BF16>(out + b.head * queries * head_dim, b.w0, queries, head_dim, group, quad,
                            [&](int r, int n, int e) { return sum[r] == 0.0f ? 0.0f : DIV_RN(o[n][2 * r + e], sum[r]); });
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const i64 row = b.w0 + group + 8 * r;
        if (row < queries && (flags & 2u) != 0 && quad == 0)
            lse[b.head * queries + row] = sum[r] == 0.0f ? NT_NEG_INF : MUL_RN(ADD_RN(m[r], nt_log2(sum[r])), NT_LN2);
    }
}

/*
 * dq = scale Σ_j dS_ij k_j for 64 queries of one (b, h) per group, warp w owning 16 of them as the forward's warps do:
 * q and dO stay in registers as A fragments; per key tile of the group's band, K and V are staged, S = Q K^T and
 * dP = dO V^T come from the tensor cores, dS = P (dP - delta) with P = 2^(s log2 e - L log2 e) in binary32 (0 and dS 0
 * for hidden keys, by selection), and dq += dS K with dS rounded to the dtype.
 */
template <int DP, int BC, bool BF16>
INLINE void nt_attention_dq(const ushort* RESTRICT d_o, const ushort* RESTRICT q, const ushort* RESTRICT k,
                            const ushort* RESTRICT v, const float* RESTRICT lse, const float* RESTRICT delta,
                            ushort* RESTRICT dq, int query_heads, int kv_heads, int queries, int keys, int head_dim,
                            int window, uint flags, uint scale_bits)
{
    constexpr int PITCH = DP + NT_PAD;
    __shared__ __attribute__((aligned(16))) ushort ks[BC * PITCH];
    __shared__ __attribute__((aligned(16))) ushort vs[BC * PITCH];
    __shared__ __attribute__((aligned(16))) ushort ps[4 * 16 * BC];   /* each warp's rounded dS, for the exact path */

    const int lid = LID(0), warp = lid >> 5, lane = lid & 31, group = lane >> 2, quad = lane & 3;
    const int causal = (int)(flags & 1u);
    const nt_query_block b = nt_query_block_at(warp, group, queries, keys, query_heads, kv_heads, causal, window);
    const ushort* kh = k + b.kv_head * keys * head_dim;
    const ushort* vh = v + b.kv_head * keys * head_dim;
    const float scale = AS_FLOAT(scale_bits), scale_log2 = MUL_RN(scale, NT_LOG2E);
    float l2[2], dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const i64 row = b.w0 + group + 8 * r;
        l2[r] = row < queries ? MUL_RN(lse[b.head * queries + row], NT_LOG2E) : 0.0f;
        dl[r] = row < queries ? delta[b.head * queries + row] : 0.0f;
    }

    uint qf[DP / 16][4], df[DP / 16][4];
    nt_global_rows<DP>(qf, q + b.head * queries * head_dim, b.w0, queries, head_dim, group, quad);
    nt_global_rows<DP>(df, d_o + b.head * queries * head_dim, b.w0, queries, head_dim, group, quad);
    float acc[DP / 8][4];
#pragma unroll
    for (int n = 0; n < DP / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

    const bool wide = (head_dim & 7) == 0 && ((u64)k & 15u) == 0 && ((u64)v & 15u) == 0;
    for (i64 j0 = b.first; j0 <= b.last; j0 += BC)
    {
        /* An infinite or NaN key would reach hidden rows through dS = 0 in the mma (0 * inf): note it. */
        const int nonfinite = nt_stage<BC, DP, BF16>(ks, kh, j0, b.last, head_dim, keys, 0, wide, lid);
        nt_stage<BC, DP, BF16>(vs, vh, j0, b.last, head_dim, keys, 0, wide, lid);
        const bool poisoned = __syncthreads_or(nonfinite) != 0;

        if (b.active && j0 <= b.warp_last && j0 + BC - 1 >= b.warp_first)
        {
            float x[BC / 8][4], y[BC / 8][4];
#pragma unroll
            for (int n = 0; n < BC / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) x[n][e] = y[n][e] = 0.0f;
            nt_rows_by_tile<DP, BC, BF16>(x, qf, ks, lane);   /* S = Q K^T */
            nt_rows_by_tile<DP, BC, BF16>(y, df, vs, lane);   /* dP = dO V^T */

            /* Element e of n-tile n: row group + 8 (e / 2), key j0 + 8 n + 2 quad + e % 2. */
            const bool whole = j0 >= b.whole_first && j0 + BC - 1 <= b.whole_last;
#pragma unroll
            for (int n = 0; n < BC / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    const int r = e >> 1;
                    const i64 j = j0 + 8 * n + 2 * quad + (e & 1);
                    const bool seen = whole || (j >= b.row_first[r] && j <= b.row_last[r]);
                    const float p = nt_exp2(MUL_RN(x[n][e], scale_log2) - l2[r]);
                    y[n][e] = seen ? MUL_RN(p, y[n][e] - dl[r]) : 0.0f;
                }
            /* dq += dS K; the exact path when a key in the tile is infinite or NaN and some row must not see it. */
            nt_add_weighted<DP, BC, BF16>(acc, y, poisoned && !whole, ps + warp * 16 * BC, ks, j0, b.row_first, b.row_last, lane);
        }
        BARRIER();
    }

    if (!b.active) return;
    nt_store_rows<DP, BF16>(dq + b.head * queries * head_dim, b.w0, queries, head_dim, group, quad,
                            [&](int r, int n, int e) { return MUL_RN(scale, acc[n][2 * r + e]); });
}

/*
 * dk = scale Σ_i dS_ij q_i and dv = Σ_i P_ij dO_i for 64 keys of one (b, g) per group, warp w owning keys 16 w ..
 * 16 w + 15, over every query head of the group in order and, per head, the tiles of BR queries that can see one of
 * the group's keys, in order (so each sum's order is fixed: no atomics). K and V stay staged for the whole call; per
 * query tile, Q, dO, L log2 e and delta are staged, S^T = K Q^T and dP^T = V dO^T come from the tensor cores, then
 * dv += P^T dO and dk += dS^T Q with P^T and dS^T rounded to the dtype (hidden pairs 0 by selection).
 */
template <int DP, int BR, bool BF16>
INLINE void nt_attention_dkdv(const ushort* RESTRICT d_o, const ushort* RESTRICT q, const ushort* RESTRICT k,
                              const ushort* RESTRICT v, const float* RESTRICT lse, const float* RESTRICT delta,
                              ushort* RESTRICT dk, ushort* RESTRICT dv, int query_heads, int kv_heads, int queries,
                              int keys, int head_dim, int window, uint flags, uint scale_bits)
{
    constexpr int PITCH = DP + NT_PAD;
    __shared__ __attribute__((aligned(16))) ushort ks[NT_KEYS * PITCH];
    __shared__ __attribute__((aligned(16))) ushort vs[NT_KEYS * PITCH];
    __shared__ __attribute__((aligned(16))) ushort qs[BR * PITCH];
    __shared__ __attribute__((aligned(16))) ushort dos[BR * PITCH];
    __shared__ __attribute__((aligned(16))) ushort ps[4 * 16 * BR];   /* each warp's rounded P^T and dS^T, for the */
    __shared__ __attribute__((aligned(16))) ushort ss[4 * 16 * BR];   /* exact path */
    __shared__ float ls[BR], ds[BR];

    const int lid = LID(0), warp = lid >> 5, lane = lid & 31, group = lane >> 2, quad = lane & 3;
    const int causal = (int)(flags & 1u);
    const i64 blocks = ((i64)keys + NT_KEYS - 1) / NT_KEYS;
    const i64 kv_head = GROUP(0) / blocks, j0 = GROUP(0) % blocks * NT_KEYS;
    const i64 heads = query_heads / kv_heads, head0 = kv_head / kv_heads * query_heads + kv_head % kv_heads * heads;
    const i64 offset = (i64)keys - queries;
    const float scale = AS_FLOAT(scale_bits), scale_log2 = MUL_RN(scale, NT_LOG2E);

    /* The group's keys and the queries that can see one of them: query i sees key j iff (!causal || i >= j - offset)
     * and (window == 0 || i <= j - offset + window - 1). */
    const i64 last_key = j0 + NT_KEYS - 1 < keys ? j0 + NT_KEYS - 1 : (i64)keys - 1;
    const i64 first = causal && j0 - offset > 0 ? j0 - offset : 0;
    const i64 last = window > 0 && last_key - offset + window - 1 < queries - 1 ? last_key - offset + window - 1
                                                                                : (i64)queries - 1;
    /* This warp's keys, and per row r (key k0 + group + 8 r) the queries that see it. */
    const i64 k0 = j0 + 16 * warp, k1 = k0 + 15 < last_key ? k0 + 15 : last_key;
    i64 row_first[2], row_last[2];
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const i64 j = k0 + group + 8 * r;
        row_first[r] = causal && j - offset > first ? j - offset : first;
        row_last[r] = window > 0 && j - offset + window - 1 < last ? j - offset + window - 1 : last;
        if (j >= keys) row_first[r] = 1, row_last[r] = 0;
    }
    /* The queries that see every key of the warp: those that see its first and its last. */
    const i64 whole_first = causal && k1 - offset > first ? k1 - offset : first;
    const i64 whole_last = window > 0 && k0 - offset + window - 1 < last ? k0 - offset + window - 1 : last;
    const i64 warp_first = causal && k0 - offset > first ? k0 - offset : first;
    const i64 warp_last = window > 0 && k1 - offset + window - 1 < last ? k1 - offset + window - 1 : last;

    const bool wide_kv = (head_dim & 7) == 0 && ((u64)k & 15u) == 0 && ((u64)v & 15u) == 0;
    const bool wide_q = (head_dim & 7) == 0 && ((u64)q & 15u) == 0 && ((u64)d_o & 15u) == 0;
    nt_stage<NT_KEYS, DP, BF16>(ks, k + kv_head * keys * head_dim, j0, last_key, head_dim, keys, 0, wide_kv, lid);
    nt_stage<NT_KEYS, DP, BF16>(vs, v + kv_head * keys * head_dim, j0, last_key, head_dim, keys, 0, wide_kv, lid);

    float dk_acc[DP / 8][4], dv_acc[DP / 8][4];
#pragma unroll
    for (int n = 0; n < DP / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk_acc[n][e] = dv_acc[n][e] = 0.0f;

    for (i64 hh = 0; hh < heads; hh++)
    {
        const i64 head = head0 + hh;
        for (i64 i0 = first; i0 <= last; i0 += BR)
        {
            /* An infinite or NaN query or output gradient would reach hidden keys through a 0 weight in the mma. */
            const int nonfinite = nt_stage<BR, DP, BF16>(qs, q + head * queries * head_dim, i0, last, head_dim, queries, 0,
                                                         wide_q, lid)
                                | nt_stage<BR, DP, BF16>(dos, d_o + head * queries * head_dim, i0, last, head_dim, queries,
                                                         0, wide_q, lid);
            if (lid < BR)
            {
                const i64 i = i0 + lid;
                ls[lid] = i <= last ? MUL_RN(lse[head * queries + i], NT_LOG2E) : 0.0f;
                ds[lid] = i <= last ? delta[head * queries + i] : 0.0f;
            }
            const bool poisoned = __syncthreads_or(nonfinite) != 0;

            if (k0 <= last_key && i0 <= warp_last && i0 + BR - 1 >= warp_first)
            {
                float x[BR / 8][4], y[BR / 8][4];
#pragma unroll
                for (int n = 0; n < BR / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) x[n][e] = y[n][e] = 0.0f;
                uint a[DP / 16][4];
                nt_load_rows<DP>(a, ks, 16 * warp, lane);
                nt_rows_by_tile<DP, BR, BF16>(x, a, qs, lane);    /* S^T = K Q^T */
                nt_load_rows<DP>(a, vs, 16 * warp, lane);
                nt_rows_by_tile<DP, BR, BF16>(y, a, dos, lane);   /* dP^T = V dO^T */

                /* Element e of n-tile n: key row group + 8 (e / 2), query i0 + 8 n + 2 quad + e % 2. */
                const bool whole = k1 - k0 == 15 && i0 >= whole_first && i0 + BR - 1 <= whole_last;
#pragma unroll
                for (int n = 0; n < BR / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                    {
                        const int r = e >> 1, c = 8 * n + 2 * quad + (e & 1);
                        const bool seen = whole || (i0 + c >= row_first[r] && i0 + c <= row_last[r]);
                        const float p = seen ? nt_exp2(MUL_RN(x[n][e], scale_log2) - ls[c]) : 0.0f;
                        y[n][e] = seen ? MUL_RN(p, y[n][e] - ds[c]) : 0.0f;
                        x[n][e] = p;
                    }
                /* dv += P^T dO and dk += dS^T Q; the exact path when a staged query or gradient is infinite or NaN and
                 * some key of the warp must not see its query. */
                const bool exact = poisoned && !whole;
                nt_add_weighted<DP, BR, BF16>(dv_acc, x, exact, ps + warp * 16 * BR, dos, i0, row_first, row_last, lane);
                nt_add_weighted<DP, BR, BF16>(dk_acc, y, exact, ss + warp * 16 * BR, qs, i0, row_first, row_last, lane);
            }
            BARRIER();
        }
    }

    const i64 at = kv_head * keys * head_dim;
    nt_store_rows<DP, BF16>(dk + at, k0, keys, head_dim, group, quad,
                            [&](int r, int n, int e) { return MUL_RN(scale, dk_acc[n][2 * r + e]); });
    nt_store_rows<DP, BF16>(dv + at, k0, keys, head_dim, group, quad, [&](int r, int n, int e) { return dv_acc[n][2 * r + e]; });
}

#define NT_ATTENTION_FORWARD(T, DP, BC, BF16)                                                                         \
    KERNEL GROUP_SIZE(NT_THREADS) void attention_forward_##T##_d##DP(                                                 \
        GLOBAL const ushort* RESTRICT q, GLOBAL const ushort* RESTRICT k, GLOBAL const ushort* RESTRICT v,            \
        GLOBAL ushort* RESTRICT output, GLOBAL float* RESTRICT lse, int queries, int keys, int head_dim,              \
        int query_heads, int kv_heads, int key_rows, int key_first, int window, uint flags, uint scale_bits)          \
    {                                                                                                                 \
        nt_attention_forward<DP, BC, BF16>(q, k, v, output, lse, queries, keys, head_dim, query_heads, kv_heads,      \
                                           key_rows, key_first, window, flags, scale_bits);                           \
    }

NT_ATTENTION_FORWARD(bf16, 32, 64, true)
NT_ATTENTION_FORWARD(bf16, 64, 64, true)
NT_ATTENTION_FORWARD(bf16, 96, 64, true)
NT_ATTENTION_FORWARD(bf16, 128, 64, true)
NT_ATTENTION_FORWARD(bf16, 192, 32, true)
NT_ATTENTION_FORWARD(bf16, 256, 32, true)
NT_ATTENTION_FORWARD(f16, 32, 64, false)
NT_ATTENTION_FORWARD(f16, 64, 64, false)
NT_ATTENTION_FORWARD(f16, 96, 64, false)
NT_ATTENTION_FORWARD(f16, 128, 64, false)
NT_ATTENTION_FORWARD(f16, 192, 32, false)
NT_ATTENTION_FORWARD(f16, 256, 32, false)

#define NT_ATTENTION_DQ(T, DP, BC, BF16)                                                                              \
    KERNEL GROUP_SIZE(NT_THREADS) void attention_dq_##T##_d##DP(                                                      \
        GLOBAL const ushort* RESTRICT d_o, GLOBAL const ushort* RESTRICT q, GLOBAL const ushort* RESTRICT k,          \
        GLOBAL const ushort* RESTRICT v, GLOBAL const float* RESTRICT lse, GLOBAL const float* RESTRICT delta,        \
        GLOBAL ushort* RESTRICT dq, int query_heads, int kv_heads, int queries, int keys, int head_dim, int window,    \
        uint flags, uint scale_bits)                                                                                  \
    {                                                                                                                 \
        nt_attention_dq<DP, BC, BF16>(d_o, q, k, v, lse, delta, dq, query_heads, kv_heads, queries, keys, head_dim,   \
                                      window, flags, scale_bits);                                                     \
    }

#define NT_ATTENTION_DKDV(T, DP, BR, BF16)                                                                            \
    KERNEL GROUP_SIZE(NT_THREADS) void attention_dkdv_##T##_d##DP(                                                    \
        GLOBAL const ushort* RESTRICT d_o, GLOBAL const ushort* RESTRICT q, GLOBAL const ushort* RESTRICT k,          \
        GLOBAL const ushort* RESTRICT v, GLOBAL const float* RESTRICT lse, GLOBAL const float* RESTRICT delta,        \
        GLOBAL ushort* RESTRICT dk, GLOBAL ushort* RESTRICT dv, int query_heads, int kv_heads, int queries, int keys,  \
        int head_dim, int window, uint flags, uint scale_bits)                                                        \
    {                                                                                                                 \
        nt_attention_dkdv<DP, BR, BF16>(d_o, q, k, v, lse, delta, dk, dv, query_heads, kv_heads, queries, keys,       \
                                        head_dim, window, flags, scale_bits);                                         \
    }

NT_ATTENTION_DQ(bf16, 32, 64, true)
NT_ATTENTION_DQ(bf16, 64, 64, true)
NT_ATTENTION_DQ(bf16, 96, 32, true)
NT_ATTENTION_DQ(bf16, 128, 32, true)
NT_ATTENTION_DQ(f16, 32, 64, false)
NT_ATTENTION_DQ(f16, 64, 64, false)
NT_ATTENTION_DQ(f16, 96, 32, false)
NT_ATTENTION_DQ(f16, 128, 32, false)
NT_ATTENTION_DKDV(bf16, 32, 32, true)
NT_ATTENTION_DKDV(bf16, 64, 32, true)
NT_ATTENTION_DKDV(bf16, 96, 16, true)
NT_ATTENTION_DKDV(bf16, 128, 16, true)
NT_ATTENTION_DKDV(f16, 32, 32, false)
NT_ATTENTION_DKDV(f16, 64, 32, false)
NT_ATTENTION_DKDV(f16, 96, 16, false)
NT_ATTENTION_DKDV(f16, 128, 16, false)
