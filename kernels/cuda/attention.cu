/*
 * cuda/attention.cu — the tensor-core forward of scaled dot-product attention for BFloat16 and Float16 inputs (sm_80
 * and newer): FlashAttention-2's schedule, with mma.sync m16n8k16 for both products and the softmax in registers.
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
 * Tiling:  a group of 4 warps takes 64 consecutive queries of one (b, h); warp w owns queries 16 w .. 16 w + 15, with
 *          q as mma A fragments in registers for the whole call. Keys are visited in tiles of BC (64, or 32 when the
 *          padded head dimension DP exceeds 128) from the first key any of the group's queries sees to the last, so a
 *          causal or windowed call touches only tiles that intersect its visible band (O(N W) for a window W). Per
 *          tile, the group stages K and V [BC][DP] in shared memory (zero past head_dim and for keys past the band),
 *          then each warp whose band meets the tile computes S = Q K^T (ldmatrix, B fragments from K's rows), masks
 *          the scores of hidden keys to -inf only when the tile is not wholly visible to all its rows, updates m and
 *          l, rescales its output accumulators, and adds P V (ldmatrix.trans from V's rows). Nothing [N, M] exists.
 * Index:   q, out [B, Hq, N, D] and lse [B, Hq, N] dense; k, v stored [B, Hkv, key_rows, D], key j of a head at storage
 *          row (key_first + j) mod key_rows (a KV cache's ring read in place; 0 <= key_first < key_rows, keys <=
 *          key_rows). Every offset is formed in i64.
 * Names:   attention_forward_<t>_d<DP> for t in bf16, f16 and DP in 32, 64, 96, 128, 192, 256: the kernel for head
 *          dimensions D <= DP (the host picks the smallest DP >= D); D need not be a multiple of anything.
 * Dtypes:  q, k, v, out as raw 16-bit bits (ushort), bf16 or f16 by the kernel's name; lse float. Sizes are int (below
 *          2^31, as the host validated); scale arrives as binary32 bits. flags: bit 0 causal, bit 1 write lse.
 * Launch:  1-D, exactly 128 threads per group (GROUP_SIZE), B Hq ceil(N / 64) groups: group x takes head
 *          x / ceil(N / 64) and query block ceil(N / 64) - 1 - x % ceil(N / 64) (the heaviest causal blocks first).
 *          Shared memory (static): 2 BC (DP + 8) ushorts for K and V, 64 BC for the rounded P of the exact path; at
 *          most 43008 bytes (DP 128). Staged rows are DP + 8 elements apart, so the 8 rows an ldmatrix reads fall in
 *          different banks.
 * Bounds:  a key row is read only for 0 <= j < keys inside the group's band, an element only below head_dim (16-byte
 *          loads only when head_dim % 8 == 0 and k, v are 16-byte aligned); q is read and out, lse written only for
 *          rows < N and columns < head_dim. Every thread reaches every barrier: the tile loop's bounds are the group's.
 * Hidden:  keys no query of the group sees are never read. A key that some rows of a tile see and others do not enters
 *          their mma with weight +0 for the others, harmless unless its value is infinite or NaN (0 * inf is NaN): so
 *          staging notes any non-finite value (__syncthreads_or), and a warp whose tile is not wholly visible to it
 *          then sums P V lane by lane over the keys each row sees (same rounded weights, FMA), never the hidden ones.
 */
#include "dialect.h"
#include "convert.h"
#include "cuda/warp_mma.h"

#define NT_THREADS 128            /* 4 warps */
#define NT_QUERIES 64             /* queries per group: 16 per warp */
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

template <int DP, int BC, bool BF16>
INLINE void nt_attention_forward(const ushort* RESTRICT q, const ushort* RESTRICT k, const ushort* RESTRICT v,
                                 ushort* RESTRICT out, float* RESTRICT lse, int queries, int keys, int head_dim,
                                 int query_heads, int kv_heads, int key_rows, int key_first, int window, uint flags,
                                 uint scale_bits)
{
    constexpr int PITCH = DP + NT_PAD;
    constexpr int CHUNKS = DP / 8;                      /* 16-byte chunks per staged row */
    __shared__ __attribute__((aligned(16))) ushort ks[BC * PITCH];
    __shared__ __attribute__((aligned(16))) ushort vs[BC * PITCH];
    __shared__ __attribute__((aligned(16))) ushort ps[4 * 16 * BC];   /* each warp's rounded P, for the exact path */

    const int lid = LID(0), warp = lid >> 5, lane = lid & 31, group = lane >> 2, quad = lane & 3;
    const int causal = (int)(flags & 1u);
    const i64 blocks = ((i64)queries + NT_QUERIES - 1) / NT_QUERIES;
    const i64 head = GROUP(0) / blocks;                                    /* b Hq + h */
    const i64 q0 = (blocks - 1 - GROUP(0) % blocks) * NT_QUERIES;
    const i64 kv_head = head / query_heads * kv_heads + (head % query_heads) / (query_heads / kv_heads);
    const ushort* kh = k + kv_head * key_rows * head_dim;
    const ushort* vh = v + kv_head * key_rows * head_dim;
    const float scale_log2 = MUL_RN(AS_FLOAT(scale_bits), NT_LOG2E);

    /* The group's band: visibility bounds are nondecreasing in i, so the first row gives the first key and the last
     * row the last. */
    i64 first, last, unused;
    nt_visible(q0, queries, keys, causal, window, &first, &unused);
    nt_visible(q0 + NT_QUERIES - 1 < queries ? q0 + NT_QUERIES - 1 : (i64)queries - 1, queries, keys, causal, window,
               &unused, &last);

    /* This warp's rows and band; its rows past N (only in the last block) compute from zeros and are never stored. */
    const i64 w0 = q0 + 16 * warp;
    const bool active = w0 < queries;
    const i64 w1 = w0 + 15 < queries ? w0 + 15 : (i64)queries - 1;
    i64 warp_first, warp_last, whole_first, whole_last;
    nt_visible(w0, queries, keys, causal, window, &warp_first, &whole_last);
    nt_visible(w1, queries, keys, causal, window, &whole_first, &warp_last);
    i64 row_first[2], row_last[2];
    nt_visible(w0 + group, queries, keys, causal, window, &row_first[0], &row_last[0]);
    nt_visible(w0 + group + 8, queries, keys, causal, window, &row_first[1], &row_last[1]);

    /* q as A fragments: register r holds row group + 8 (r & 1), columns 16 s + 2 quad + 8 (r >> 1) and the next. */
    uint qf[DP / 16][4];
    const ushort* qh = q + head * queries * head_dim;
#pragma unroll
    for (int s = 0; s < DP / 16; s++)
#pragma unroll
        for (int r = 0; r < 4; r++)
        {
            const i64 row = w0 + group + 8 * (r & 1);
            const int col = 16 * s + 2 * quad + 8 * (r >> 1);
            qf[s][r] = row < queries ? nt_pair(qh + row * head_dim + col, col, head_dim) : 0u;
        }

    float o[DP / 8][4];
#pragma unroll
    for (int n = 0; n < DP / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {NT_NEG_INF, NT_NEG_INF}, l[2] = {0.0f, 0.0f};

    const bool wide = (head_dim & 7) == 0 && ((u64)k & 15u) == 0 && ((u64)v & 15u) == 0;
    for (i64 j0 = first; j0 <= last; j0 += BC)
    {
        /* Stage keys j0 .. j0 + BC - 1 of the band; zeros past the band and past head_dim. Note whether any staged
         * value is an infinity or a NaN. */
        int nonfinite = 0;
        for (int e = lid; e < BC * CHUNKS; e += NT_THREADS)
        {
            const int r = e / CHUNKS, c = 8 * (e % CHUNKS);
            const i64 j = j0 + r;
            uint4 kw = {0u, 0u, 0u, 0u}, vw = {0u, 0u, 0u, 0u};
            if (j <= last && c < head_dim)
            {
                i64 row = (i64)key_first + j;
                if (row >= key_rows) row -= key_rows;
                const ushort* kx = kh + row * head_dim + c;
                const ushort* vx = vh + row * head_dim + c;
                if (wide)
                {
                    kw = *(const uint4*)kx;
                    vw = *(const uint4*)vx;
                }
                else
                {
                    kw.x = nt_pair(kx, c, head_dim), kw.y = nt_pair(kx + 2, c + 2, head_dim);
                    kw.z = nt_pair(kx + 4, c + 4, head_dim), kw.w = nt_pair(kx + 6, c + 6, head_dim);
                    vw.x = nt_pair(vx, c, head_dim), vw.y = nt_pair(vx + 2, c + 2, head_dim);
                    vw.z = nt_pair(vx + 4, c + 4, head_dim), vw.w = nt_pair(vx + 6, c + 6, head_dim);
                }
            }
            *(uint4*)(ks + r * PITCH + c) = kw;
            *(uint4*)(vs + r * PITCH + c) = vw;
            nonfinite |= nt_nonfinite<BF16>(vw.x) | nt_nonfinite<BF16>(vw.y) | nt_nonfinite<BF16>(vw.z) | nt_nonfinite<BF16>(vw.w);
        }
        const bool poisoned = __syncthreads_or(nonfinite) != 0;

        if (active && j0 <= warp_last && j0 + BC - 1 >= warp_first)
        {
            /* S = Q K^T: n-tiles 2 t and 2 t + 1 (keys 16 t .. 16 t + 15) per ldmatrix, whose matrix mi holds keys
             * 8 (2 t + mi / 2) .. + 7 and columns 16 s + 8 (mi % 2) .. + 7. */
            float x[BC / 8][4];
#pragma unroll
            for (int n = 0; n < BC / 8; n++) x[n][0] = x[n][1] = x[n][2] = x[n][3] = 0.0f;
#pragma unroll
            for (int t = 0; t < BC / 16; t++)
#pragma unroll
                for (int s = 0; s < DP / 16; s++)
                {
                    uint kb[4];
                    const int mi = lane >> 3;
                    nt_ldmatrix_x4(kb, ks + (16 * t + 8 * (mi >> 1) + (lane & 7)) * PITCH + 16 * s + 8 * (mi & 1));
                    nt_mma<BF16>(x[2 * t], qf[s], kb[0], kb[1]);
                    nt_mma<BF16>(x[2 * t + 1], qf[s], kb[2], kb[3]);
                }

            /* Scores in base 2; hidden keys -inf unless the tile is visible to every row of the warp. Element e of
             * n-tile n is row group + 8 (e / 2), key j0 + 8 n + 2 quad + e % 2. */
            const bool whole = j0 >= whole_first && j0 + BC - 1 <= whole_last;
            float top[2] = {NT_NEG_INF, NT_NEG_INF};
#pragma unroll
            for (int n = 0; n < BC / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    float y = MUL_RN(x[n][e], scale_log2);
                    const i64 j = j0 + 8 * n + 2 * quad + (e & 1);
                    if (!whole && (j < row_first[e >> 1] || j > row_last[e >> 1])) y = NT_NEG_INF;
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
            uint pf[BC / 16][4];
#pragma unroll
            for (int n = 0; n < BC / 8; n++)
            {
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    x[n][e] = nt_exp2(x[n][e] - shift[e >> 1]);
                    l[e >> 1] = ADD_RN(l[e >> 1], x[n][e]);
                }
                /* A fragments of P: keys 16 t .. 16 t + 15 are n-tiles 2 t (registers 0, 1) and 2 t + 1 (2, 3). */
                pf[n / 2][2 * (n & 1)] = nt_pack<BF16>(x[n][0], x[n][1]);
                pf[n / 2][2 * (n & 1) + 1] = nt_pack<BF16>(x[n][2], x[n][3]);
            }

            if (!poisoned || whole)
            {
                /* O += P V: per ldmatrix.trans, matrix mi holds keys 16 t + 8 (mi % 2) .. + 7 and columns
                 * 16 s + 8 (mi / 2) .. + 7, so registers 0, 1 are n-tile 2 s's B fragment and 2, 3 n-tile 2 s + 1's. */
#pragma unroll
                for (int t = 0; t < BC / 16; t++)
#pragma unroll
                    for (int s = 0; s < DP / 16; s++)
                    {
                        uint vb[4];
                        const int mi = lane >> 3;
                        nt_ldmatrix_x4_trans(vb, vs + (16 * t + 8 * (mi & 1) + (lane & 7)) * PITCH + 16 * s + 8 * (mi >> 1));
                        nt_mma<BF16>(o[2 * s], pf[t], vb[0], vb[1]);
                        nt_mma<BF16>(o[2 * s + 1], pf[t], vb[2], vb[3]);
                    }
            }
            else
            {
                /* A value in the tile is infinite or NaN and some row of the warp must not see its key: the mma would
                 * give that row 0 * inf = NaN. So each lane sums its own outputs over the keys its rows see, with the
                 * same rounded weights, through this warp's slice of shared memory. Rare: only such data takes it. */
                ushort* pw = ps + warp * 16 * BC;
#pragma unroll
                for (int n = 0; n < BC / 8; n++)
#pragma unroll
                    for (int r = 0; r < 2; r++)
                        *(uint*)(pw + (group + 8 * r) * BC + 8 * n + 2 * quad) = pf[n / 2][2 * (n & 1) + r];
                __syncwarp();
                for (int jj = 0; jj < BC; jj++)
                {
                    const ushort* vrow = vs + jj * PITCH;
#pragma unroll
                    for (int r = 0; r < 2; r++)
                    {
                        if (j0 + jj < row_first[r] || j0 + jj > row_last[r]) continue;
                        const float p = nt_widen<BF16>(pw[(group + 8 * r) * BC + jj]);
#pragma unroll
                        for (int n = 0; n < DP / 8; n++)
#pragma unroll
                            for (int e = 0; e < 2; e++)
                                o[n][2 * r + e] = FMA(p, nt_widen<BF16>(vrow[8 * n + 2 * quad + e]), o[n][2 * r + e]);
                    }
                }
                __syncwarp();
            }
        }
        BARRIER();
    }

    if (!active) return;
    /* out = o / l, rounded to the dtype; l = 0 only for a row that saw no key (its o is 0): out 0, lse -inf. */
    ushort* oh = out + head * queries * head_dim;
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const i64 row = w0 + group + 8 * r;
        const float sum = nt_quad_sum(l[r]);
        if (row >= queries) continue;
#pragma unroll
        for (int n = 0; n < DP / 8; n++)
#pragma unroll
            for (int e = 0; e < 2; e++)
            {
                const int col = 8 * n + 2 * quad + e;
                if (col < head_dim) oh[row * head_dim + col] = nt_round<BF16>(sum == 0.0f ? 0.0f : DIV_RN(o[n][2 * r + e], sum));
            }
        if ((flags & 2u) != 0 && quad == 0)
            lse[head * queries + row] = sum == 0.0f ? NT_NEG_INF : MUL_RN(ADD_RN(m[r], nt_log2(sum)), NT_LN2);
    }
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
