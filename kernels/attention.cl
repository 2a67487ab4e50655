/*
 * attention.cl — scaled dot-product attention, forward and backward, in the FlashAttention-2 scheme: keys are visited
 * in tiles with an online softmax, so no [N, M] score matrix exists anywhere (only tile-sized local memory).
 *
 * Math:    s_ij = scale * (q_i . k_j), L_i = log sum_j exp(s_ij) (natural log), P_ij = exp(s_ij - L_i), over the keys
 *          query i sees: query i sits at p = M - N + i, key j is visible iff (!causal || j <= p) &&
 *          (window == 0 || j > p - window). forward: O_i = sum_j P_ij v_j (0 when no key is visible, L_i = -inf).
 *          delta: delta_i = dO_i . O_i. dq: dS_ij = P_ij (dO_i . v_j - delta_i), dq_i = scale * sum_j dS_ij k_j.
 *          dkdv: dk_j = scale * sum_i dS_ij q_i, dv_j = sum_i P_ij dO_i, both over every query head of key/value head
 *          j's group. Keys nobody sees get dk = dv = 0, queries that see nothing dq = 0. Every dot product is one chain
 *          of FMAs over d = 0..D-1 in order from +0; every sum over keys (or queries) runs in index order, tile after
 *          tile, so results are bitwise deterministic (no atomics) and the tiling never depends on the device.
 *          Online softmax (forward): per key tile, m' = max(m, max_j s_ij), alpha = exp(m - m') (0 while m = -inf),
 *          l = l * alpha + sum_j exp(s_ij - m'), O = O * alpha + sum_j exp(s_ij - m') v_j; at the end O / l and
 *          L = m + log(l). A hidden key never enters a sum (its score is never exponentiated and its value is
 *          skipped, not multiplied by 0), so a NaN in a hidden key or value cannot leak and -inf - -inf never occurs.
 *          exp and log are the binary32 library functions (EXP, LOG of dialect.h), in base e: no log2(e) folding.
 * Index:   q, O, dO, dq are [B, Hq, N, D] dense; lse and delta [B, Hq, N] floats. k and v are stores [B, Hkv, key_rows,
 *          D]: key j of a head is storage row key_first + j, less key_rows when that reaches key_rows (a ring), j < M;
 *          the backward kernels take dense keys (key_rows = M, key_first = 0: no parameters, since a launch passes at
 *          most 16 arguments), and dk and dv are dense [B, Hkv, M, D]. Query head h reads key/value head h / (Hq / Hkv).
 *          All offsets are formed in i64.
 * Dtypes:  T in f32, f16, bf16 as raw bits (uint, ushort, ushort), widened exactly by convert.h; outputs of 16-bit
 *          dtypes are rounded to nearest even from float by convert.h. lse, delta and all arithmetic are float.
 * Tiling:  groups of exactly NT_THREADS = 256 threads, lid = 16 r + c. A tile is NT_BQ = 16 queries by NT_BK = 16 keys:
 *          in the score phase thread (r, c) computes the score of query r and key c of the tile; in an accumulation
 *          phase thread (r, c) owns row r's dims d = c + 16 t, t < 16 (D <= 256), in registers (t = 4 cc + u: chunk cc,
 *          unrolled, so every register index is a constant). Operands are staged in local memory, widened to float, in
 *          chunks of NT_CHUNK = 64 dims ([16 rows][65] floats: the pitch keeps a column walk in distinct banks), so
 *          local memory stays below 32 KB for any D: forward 16 x 256 q floats + one chunk + two 16 x 17 score tiles =
 *          22.6 KB; dq 4 chunks + one score tile = 17.7 KB; dkdv 4 chunks + two score tiles = 18.8 KB.
 *          forward, dq: group g takes head bh = g / ceil(N / 16) and queries i0 = 16 (g % ceil(N / 16)) ..., and visits
 *          only the key tiles from the first key its first query sees to the last key its last query sees (causal skips
 *          the upper triangle, a window costs O(N W)). dkdv: group g takes key/value head g / ceil(M / 16) and keys
 *          j0 = 16 (g % ceil(M / 16)) ..., and for each query head of the group visits only the query tiles that can
 *          see one of its keys.
 * Launch:  forward, dq: 1-D, B * Hq * ceil(N / 16) groups of 256; dkdv: 1-D, B * Hkv * ceil(M / 16) groups of 256;
 *          delta: any 1-D grid-stride launch over rows = B * Hq * N (one thread per row). flags: bit 0 causal, bit 1
 *          write lse (forward). scale arrives as binary32 bits.
 * Bounds:  a staged element is read only for a row inside [0, N) (queries) or [0, M) (keys) and d < D, else +0; a row
 *          is written only when inside N (or M), a dim only when d < D. The loop trip counts (tiles, chunks, heads)
 *          depend only on the group, so every thread reaches every barrier.
 */
#include "dialect.h"
#include "convert.h"

#define NT_BQ 16             /* queries per tile */
#define NT_BK 16             /* keys per tile */
#define NT_THREADS 256       /* threads per group: 16 rows x 16 lanes */
#define NT_CHUNK 64          /* dims per staged chunk */
#define NT_CPITCH (NT_CHUNK + 1)
#define NT_SPITCH (NT_BK + 1)
#define NT_MAXD 256          /* Attention.MaxHeadDim */
#define NT_CHUNKS (NT_MAXD / NT_CHUNK)
#define NT_NEG_INF AS_FLOAT(0xFF800000u)

#define ELEM_f32 uint
#define ELEM_f16 ushort
#define ELEM_bf16 ushort
#define WIDEN_f32(x) AS_FLOAT(x)
#define WIDEN_f16(x) AS_FLOAT(nt_f16_to_f32(x))
#define WIDEN_bf16(x) AS_FLOAT(nt_bf16_to_f32(x))
#define NARROW_f32(x) AS_UINT(x)
#define NARROW_f16(x) nt_f32_to_f16(AS_UINT(x))
#define NARROW_bf16(x) nt_f32_to_bf16(AS_UINT(x))

/* Whether the query at position p sees key j. */
INLINE int nt_visible(i64 p, i64 j, int causal, int window)
{
    return (!causal || j <= p) && (window == 0 || j > p - window);
}

/* The storage row of key j: key_first + j, wrapped once around the ring of key_rows rows. */
INLINE i64 nt_key_row(i64 j, int key_rows, int key_first)
{
    i64 row = (i64)key_first + j;
    return row >= key_rows ? row - key_rows : row;
}

/*
 * Stages dims [d0, d0 + 64) of 16 rows into tile[row * NT_CPITCH + dd], widened; the rows are queries i0.. of a dense
 * head at base (when ring is 0) or keys j0.. of a store at base (ring addressing). Rows at or past count and dims at
 * or past D hold +0. Element e = lid + 256 s, dd = e % 64: consecutive threads read consecutive dims.
 */
#define STAGE(T)                                                                                                  \
    INLINE void nt_stage_##T(LOCAL_PTR(float) tile, GLOBAL const ELEM_##T* RESTRICT x, i64 base, i64 row0,        \
                             i64 count, int head_dim, int d0, int ring, int key_rows, int key_first, int lid)      \
    {                                                                                                              \
        for (int s = 0; s < NT_BK * NT_CHUNK / NT_THREADS; s++)                                                    \
        {                                                                                                          \
            const int e = lid + s * NT_THREADS, row = e / NT_CHUNK, dd = e % NT_CHUNK;                             \
            const i64 j = row0 + row;                                                                              \
            float value = 0.0f;                                                                                    \
            if (j < count && d0 + dd < head_dim)                                                                   \
            {                                                                                                      \
                const i64 at = ring ? nt_key_row(j, key_rows, key_first) : j;                                      \
                value = WIDEN_##T(x[base + at * head_dim + d0 + dd]);                                              \
            }                                                                                                      \
            tile[row * NT_CPITCH + dd] = value;                                                                    \
        }                                                                                                          \
    }

STAGE(f32)
STAGE(f16)
STAGE(bf16)

/*
 * acc[t] (dim 16 t + c of query row r, at position p) += weights[jj] * row jj, for each key j0 + jj of the tile that the
 * query sees, in key order: the rows (values for the forward's P V, keys for dq's dS K) staged chunk by chunk into
 * tile. Every thread of the group calls it (it holds barriers).
 */
#define WEIGHTED_ROWS(T)                                                                                           \
    INLINE void nt_weighted_rows_##T(float* acc, LOCAL_PTR(float) tile, LOCAL_PTR(float) weights,                  \
                                     GLOBAL const ELEM_##T* RESTRICT rows, i64 kv_base, i64 j0, int keys,          \
                                     int head_dim, int key_rows, int key_first, int lid, int c, int valid,         \
                                     i64 last, i64 p, int causal, int window)                                      \
    {                                                                                                              \
        _Pragma("unroll") for (int cc = 0; cc < NT_CHUNKS; cc++)                                                   \
        {                                                                                                          \
            if (cc * NT_CHUNK >= head_dim) continue;                                                               \
            BARRIER();                                                                                             \
            nt_stage_##T(tile, rows, kv_base, j0, keys, head_dim, cc * NT_CHUNK, 1, key_rows, key_first, lid);     \
            BARRIER();                                                                                             \
            for (int jj = 0; jj < NT_BK; jj++)                                                                     \
            {                                                                                                      \
                if (!(valid && j0 + jj <= last && nt_visible(p, j0 + jj, causal, window))) continue;               \
                const float weight = weights[jj];                                                                  \
                _Pragma("unroll") for (int u = 0; u < 4; u++)                                                      \
                    acc[4 * cc + u] = FMA(weight, tile[jj * NT_CPITCH + 16 * u + c], acc[4 * cc + u]);             \
            }                                                                                                      \
        }                                                                                                          \
    }

WEIGHTED_ROWS(f32)
WEIGHTED_ROWS(f16)
WEIGHTED_ROWS(bf16)


/* The first key the query at position p0 sees and the last the query at position p1 sees (empty when first > last). */
INLINE i64 nt_first_key(i64 p0, int window) { return window > 0 ? (p0 - window + 1 > 0 ? p0 - window + 1 : 0) : 0; }
INLINE i64 nt_last_key(i64 p1, int keys, int causal) { return causal ? (p1 < keys - 1 ? p1 : (i64)keys - 1) : (i64)keys - 1; }

#define FORWARD_KERNEL(T)                                                                                          \
    KERNEL GROUP_SIZE(NT_THREADS) void attention_forward_##T(                                                      \
        GLOBAL const ELEM_##T* RESTRICT q, GLOBAL const ELEM_##T* RESTRICT k, GLOBAL const ELEM_##T* RESTRICT v,   \
        GLOBAL ELEM_##T* RESTRICT o, GLOBAL float* RESTRICT lse, int query_heads, int kv_heads, int queries,       \
        int keys, int head_dim, int key_rows, int key_first, int window, uint flags, uint scale_bits)              \
    {                                                                                                              \
        LOCAL float q_tile[NT_BQ * NT_MAXD];                                                                       \
        LOCAL float kv_tile[NT_BK * NT_CPITCH];                                                                    \
        LOCAL float s_tile[NT_BQ * NT_SPITCH];                                                                     \
        LOCAL float p_tile[NT_BQ * NT_SPITCH];                                                                     \
        const int lid = LID(0), r = lid / 16, c = lid % 16;                                                        \
        const int causal = (flags & 1u) != 0u;                                                                     \
        const float scale = AS_FLOAT(scale_bits);                                                                  \
        const i64 tiles = ((i64)queries + NT_BQ - 1) / NT_BQ;                                                      \
        const i64 bh = GROUP(0) / tiles, i0 = GROUP(0) % tiles * NT_BQ;                                            \
        const i64 b = bh / query_heads, h = bh % query_heads, g = h / (query_heads / kv_heads);                    \
        const i64 q_base = bh * queries * head_dim, kv_base = (b * kv_heads + g) * key_rows * head_dim;            \
        const i64 offset = (i64)keys - queries, i = i0 + r, p = offset + i;                                        \
        const int valid = i < queries;                                                                             \
        for (int e = lid; e < NT_BQ * head_dim; e += NT_THREADS)                                                   \
        {                                                                                                          \
            const i64 row = i0 + e / head_dim;                                                                     \
            q_tile[e] = row < queries ? WIDEN_##T(q[q_base + row * head_dim + e % head_dim]) : 0.0f;               \
        }                                                                                                          \
        const i64 last_query = i0 + NT_BQ - 1 < queries ? i0 + NT_BQ - 1 : (i64)queries - 1;                       \
        const i64 first = nt_first_key(offset + i0, window), last = nt_last_key(offset + last_query, keys, causal); \
        float m = NT_NEG_INF, l = 0.0f;                                                                            \
        float acc[NT_MAXD / 16];                                                                                   \
        _Pragma("unroll") for (int t = 0; t < NT_MAXD / 16; t++) acc[t] = 0.0f;                                    \
        for (i64 j0 = first; j0 <= last; j0 += NT_BK)                                                              \
        {                                                                                                          \
            float dot = 0.0f;                                                                                      \
            for (int d0 = 0; d0 < head_dim; d0 += NT_CHUNK)                                                        \
            {                                                                                                      \
                BARRIER();                                                                                         \
                nt_stage_##T(kv_tile, k, kv_base, j0, keys, head_dim, d0, 1, key_rows, key_first, lid);            \
                BARRIER();                                                                                         \
                const int n = head_dim - d0 < NT_CHUNK ? head_dim - d0 : NT_CHUNK;                                 \
                for (int e = 0; e < n; e++) dot = FMA(q_tile[r * head_dim + d0 + e], kv_tile[c * NT_CPITCH + e], dot); \
            }                                                                                                      \
            const int seen = valid && j0 + c <= last && nt_visible(p, j0 + c, causal, window);                     \
            const float s = seen ? MUL_RN(scale, dot) : NT_NEG_INF;                                                \
            s_tile[r * NT_SPITCH + c] = s;                                                                         \
            BARRIER();                                                                                             \
            float m_new = m;                                                                                       \
            for (int jj = 0; jj < NT_BK; jj++) m_new = s_tile[r * NT_SPITCH + jj] > m_new ? s_tile[r * NT_SPITCH + jj] : m_new; \
            p_tile[r * NT_SPITCH + c] = seen ? EXP(s - m_new) : 0.0f;                                              \
            const float alpha = m == NT_NEG_INF ? 0.0f : EXP(m - m_new);                                           \
            m = m_new;                                                                                             \
            BARRIER();                                                                                             \
            float row_sum = 0.0f;                                                                                  \
            for (int jj = 0; jj < NT_BK; jj++) row_sum = ADD_RN(row_sum, p_tile[r * NT_SPITCH + jj]);              \
            l = ADD_RN(MUL_RN(l, alpha), row_sum);                                                                 \
            _Pragma("unroll") for (int t = 0; t < NT_MAXD / 16; t++) acc[t] = MUL_RN(acc[t], alpha);               \
            nt_weighted_rows_##T(acc, kv_tile, p_tile + r * NT_SPITCH, v, kv_base, j0, keys, head_dim, key_rows,   \
                                 key_first, lid, c, valid, last, p, causal, window);                               \
        }                                                                                                          \
        if (!valid) return;                                                                                        \
        _Pragma("unroll") for (int t = 0; t < NT_MAXD / 16; t++)                                                   \
        {                                                                                                          \
            const int d = 16 * t + c;                                                                              \
            if (d < head_dim) o[q_base + i * head_dim + d] = NARROW_##T(l > 0.0f ? DIV_RN(acc[t], l) : 0.0f);     \
        }                                                                                                          \
        if ((flags & 2u) != 0u && c == 0) lse[bh * queries + i] = l > 0.0f ? ADD_RN(m, LOG(l)) : NT_NEG_INF;      \
    }

/* delta[row] = dO[row, :] . O[row, :], one FMA chain from +0 over d in order; one thread per row, grid-stride. */
#define DELTA_KERNEL(T)                                                                                            \
    KERNEL void attention_delta_##T(GLOBAL const ELEM_##T* RESTRICT d_o, GLOBAL const ELEM_##T* RESTRICT o,        \
                                    GLOBAL float* RESTRICT delta, i64 rows, int head_dim)                          \
    {                                                                                                              \
        for (i64 row = GID(0); row < rows; row += (i64)LSIZE(0) * NGROUPS(0))                                      \
        {                                                                                                          \
            float sum = 0.0f;                                                                                      \
            for (int d = 0; d < head_dim; d++)                                                                     \
                sum = FMA(WIDEN_##T(d_o[row * head_dim + d]), WIDEN_##T(o[row * head_dim + d]), sum);              \
            delta[row] = sum;                                                                                      \
        }                                                                                                          \
    }

/*
 * The score phase of the backward for a 16 x 16 tile (queries i0.. of head bh, keys j0.. of its kv head): thread
 * (r, c) returns dS for query r and key c and writes P and dS to p_tile and ds_tile when those are given (0 where
 * hidden). Stages q, dO, k, v chunk by chunk into four tiles.
 */
#define SCORES(T)                                                                                                  \
    INLINE float nt_scores_##T(LOCAL_PTR(float) q_tile, LOCAL_PTR(float) do_tile, LOCAL_PTR(float) k_tile,         \
                               LOCAL_PTR(float) v_tile, GLOBAL const ELEM_##T* RESTRICT d_o,                       \
                               GLOBAL const ELEM_##T* RESTRICT q, GLOBAL const ELEM_##T* RESTRICT k,               \
                               GLOBAL const ELEM_##T* RESTRICT v, i64 q_base, i64 kv_base, i64 i0, i64 j0,         \
                               int queries, int keys, int head_dim, int key_rows, int key_first, int seen,         \
                               float lse_r, float delta_r, float scale, int lid, int r, int c, float* p_out)       \
    {                                                                                                              \
        float dot = 0.0f, dp = 0.0f;                                                                               \
        for (int d0 = 0; d0 < head_dim; d0 += NT_CHUNK)                                                            \
        {                                                                                                          \
            BARRIER();                                                                                             \
            nt_stage_##T(q_tile, q, q_base, i0, queries, head_dim, d0, 0, key_rows, key_first, lid);               \
            nt_stage_##T(do_tile, d_o, q_base, i0, queries, head_dim, d0, 0, key_rows, key_first, lid);            \
            nt_stage_##T(k_tile, k, kv_base, j0, keys, head_dim, d0, 1, key_rows, key_first, lid);                 \
            nt_stage_##T(v_tile, v, kv_base, j0, keys, head_dim, d0, 1, key_rows, key_first, lid);                 \
            BARRIER();                                                                                             \
            const int n = head_dim - d0 < NT_CHUNK ? head_dim - d0 : NT_CHUNK;                                     \
            for (int e = 0; e < n; e++)                                                                            \
            {                                                                                                      \
                dot = FMA(q_tile[r * NT_CPITCH + e], k_tile[c * NT_CPITCH + e], dot);                              \
                dp = FMA(do_tile[r * NT_CPITCH + e], v_tile[c * NT_CPITCH + e], dp);                               \
            }                                                                                                      \
        }                                                                                                          \
        if (!seen) { *p_out = 0.0f; return 0.0f; }                                                                 \
        const float pr = EXP(MUL_RN(scale, dot) - lse_r);                                                          \
        *p_out = pr;                                                                                               \
        return MUL_RN(pr, dp - delta_r);                                                                           \
    }

SCORES(f32)
SCORES(f16)
SCORES(bf16)

#define DQ_KERNEL(T)                                                                                               \
    KERNEL GROUP_SIZE(NT_THREADS) void attention_dq_##T(                                                           \
        GLOBAL const ELEM_##T* RESTRICT d_o, GLOBAL const ELEM_##T* RESTRICT q, GLOBAL const ELEM_##T* RESTRICT k, \
        GLOBAL const ELEM_##T* RESTRICT v, GLOBAL const float* RESTRICT lse, GLOBAL const float* RESTRICT delta,   \
        GLOBAL ELEM_##T* RESTRICT dq, int query_heads, int kv_heads, int queries, int keys, int head_dim,          \
        int window, uint flags, uint scale_bits)                                                                   \
    {                                                                                                              \
        const int key_rows = keys, key_first = 0; /* the backward reads dense keys */                             \
        LOCAL float q_tile[NT_BQ * NT_CPITCH];                                                                     \
        LOCAL float do_tile[NT_BQ * NT_CPITCH];                                                                    \
        LOCAL float k_tile[NT_BK * NT_CPITCH];                                                                     \
        LOCAL float v_tile[NT_BK * NT_CPITCH];                                                                     \
        LOCAL float ds_tile[NT_BQ * NT_SPITCH];                                                                    \
        const int lid = LID(0), r = lid / 16, c = lid % 16;                                                        \
        const int causal = (flags & 1u) != 0u;                                                                     \
        const float scale = AS_FLOAT(scale_bits);                                                                  \
        const i64 tiles = ((i64)queries + NT_BQ - 1) / NT_BQ;                                                      \
        const i64 bh = GROUP(0) / tiles, i0 = GROUP(0) % tiles * NT_BQ;                                            \
        const i64 b = bh / query_heads, h = bh % query_heads, g = h / (query_heads / kv_heads);                    \
        const i64 q_base = bh * queries * head_dim, kv_base = (b * kv_heads + g) * key_rows * head_dim;            \
        const i64 offset = (i64)keys - queries, i = i0 + r, p = offset + i;                                        \
        const int valid = i < queries;                                                                             \
        const float lse_r = valid ? lse[bh * queries + i] : 0.0f, delta_r = valid ? delta[bh * queries + i] : 0.0f; \
        const i64 last_query = i0 + NT_BQ - 1 < queries ? i0 + NT_BQ - 1 : (i64)queries - 1;                       \
        const i64 first = nt_first_key(offset + i0, window), last = nt_last_key(offset + last_query, keys, causal); \
        float acc[NT_MAXD / 16];                                                                                   \
        _Pragma("unroll") for (int t = 0; t < NT_MAXD / 16; t++) acc[t] = 0.0f;                                    \
        for (i64 j0 = first; j0 <= last; j0 += NT_BK)                                                              \
        {                                                                                                          \
            const int seen = valid && j0 + c <= last && nt_visible(p, j0 + c, causal, window);                     \
            float unused;                                                                                          \
            ds_tile[r * NT_SPITCH + c] = nt_scores_##T(q_tile, do_tile, k_tile, v_tile, d_o, q, k, v, q_base,      \
                kv_base, i0, j0, queries, keys, head_dim, key_rows, key_first, seen, lse_r, delta_r, scale, lid,   \
                r, c, &unused);                                                                                    \
            nt_weighted_rows_##T(acc, k_tile, ds_tile + r * NT_SPITCH, k, kv_base, j0, keys, head_dim, key_rows,   \
                                 key_first, lid, c, valid, last, p, causal, window);                               \
        }                                                                                                          \
        if (!valid) return;                                                                                        \
        _Pragma("unroll") for (int t = 0; t < NT_MAXD / 16; t++)                                                   \
        {                                                                                                          \
            const int d = 16 * t + c;                                                                              \
            if (d < head_dim) dq[q_base + i * head_dim + d] = NARROW_##T(MUL_RN(scale, acc[t]));                   \
        }                                                                                                          \
    }

#define DKDV_KERNEL(T)                                                                                             \
    KERNEL GROUP_SIZE(NT_THREADS) void attention_dkdv_##T(                                                         \
        GLOBAL const ELEM_##T* RESTRICT d_o, GLOBAL const ELEM_##T* RESTRICT q, GLOBAL const ELEM_##T* RESTRICT k, \
        GLOBAL const ELEM_##T* RESTRICT v, GLOBAL const float* RESTRICT lse, GLOBAL const float* RESTRICT delta,   \
        GLOBAL ELEM_##T* RESTRICT dk, GLOBAL ELEM_##T* RESTRICT dv, int query_heads, int kv_heads, int queries,    \
        int keys, int head_dim, int window, uint flags, uint scale_bits)                                           \
    {                                                                                                              \
        const int key_rows = keys, key_first = 0; /* the backward reads dense keys */                             \
        LOCAL float q_tile[NT_BQ * NT_CPITCH];                                                                     \
        LOCAL float do_tile[NT_BQ * NT_CPITCH];                                                                    \
        LOCAL float k_tile[NT_BK * NT_CPITCH];                                                                     \
        LOCAL float v_tile[NT_BK * NT_CPITCH];                                                                     \
        LOCAL float p_tile[NT_BQ * NT_SPITCH];                                                                     \
        LOCAL float ds_tile[NT_BQ * NT_SPITCH];                                                                    \
        const int lid = LID(0), r = lid / 16, c = lid % 16;                                                        \
        const int causal = (flags & 1u) != 0u;                                                                     \
        const float scale = AS_FLOAT(scale_bits);                                                                  \
        const i64 tiles = ((i64)keys + NT_BK - 1) / NT_BK;                                                         \
        const i64 bg = GROUP(0) / tiles, j0 = GROUP(0) % tiles * NT_BK;                                            \
        const i64 b = bg / kv_heads, g = bg % kv_heads, group = query_heads / kv_heads;                            \
        const i64 kv_base = bg * key_rows * head_dim, j = j0 + r;                                                  \
        const i64 offset = (i64)keys - queries;                                                                    \
        const i64 last_key = j0 + NT_BK - 1 < keys ? j0 + NT_BK - 1 : (i64)keys - 1;                               \
        /* query i sees key j only if i >= j - offset (causal) and i <= j + window - 1 - offset (window) */        \
        const i64 first = causal && j0 - offset > 0 ? j0 - offset : 0;                                             \
        const i64 last = window > 0 && last_key + window - 1 - offset < queries - 1                                \
            ? last_key + window - 1 - offset : (i64)queries - 1;                                                   \
        float dk_acc[NT_MAXD / 16], dv_acc[NT_MAXD / 16];                                                          \
        _Pragma("unroll") for (int t = 0; t < NT_MAXD / 16; t++) { dk_acc[t] = 0.0f; dv_acc[t] = 0.0f; }          \
        for (i64 hh = 0; hh < group; hh++)                                                                         \
        {                                                                                                          \
            const i64 bh = b * query_heads + g * group + hh, q_base = bh * queries * head_dim;                     \
            for (i64 i0 = first; i0 <= last; i0 += NT_BQ)                                                          \
            {                                                                                                      \
                /* score phase: thread (r, c) = (query i0 + r, key j0 + c) */                                      \
                const i64 i = i0 + r;                                                                              \
                const int seen = i <= last && j0 + c < keys && nt_visible(offset + i, j0 + c, causal, window);     \
                const float lse_r = seen ? lse[bh * queries + i] : 0.0f;                                           \
                const float delta_r = seen ? delta[bh * queries + i] : 0.0f;                                       \
                float pr;                                                                                          \
                const float ds = nt_scores_##T(q_tile, do_tile, k_tile, v_tile, d_o, q, k, v, q_base, kv_base, i0, \
                    j0, queries, keys, head_dim, key_rows, key_first, seen, lse_r, delta_r, scale, lid, r, c, &pr); \
                p_tile[r * NT_SPITCH + c] = pr;                                                                    \
                ds_tile[r * NT_SPITCH + c] = ds;                                                                   \
                /* accumulation phase: thread (r, c) = (key j0 + r, dims c + 16 t) */                              \
                _Pragma("unroll") for (int cc = 0; cc < NT_CHUNKS; cc++)                                           \
                {                                                                                                  \
                    if (cc * NT_CHUNK >= head_dim) continue;                                                       \
                    BARRIER();                                                                                     \
                    nt_stage_##T(q_tile, q, q_base, i0, queries, head_dim, cc * NT_CHUNK, 0, key_rows, key_first, lid); \
                    nt_stage_##T(do_tile, d_o, q_base, i0, queries, head_dim, cc * NT_CHUNK, 0, key_rows, key_first, lid); \
                    BARRIER();                                                                                     \
                    for (int qq = 0; qq < NT_BQ; qq++)                                                             \
                    {                                                                                              \
                        if (!(i0 + qq <= last && j < keys && nt_visible(offset + i0 + qq, j, causal, window)))     \
                            continue;                                                                              \
                        const float weight = p_tile[qq * NT_SPITCH + r], dscore = ds_tile[qq * NT_SPITCH + r];     \
                        _Pragma("unroll") for (int u = 0; u < 4; u++)                                              \
                        {                                                                                          \
                            const int at = qq * NT_CPITCH + 16 * u + c;                                            \
                            dv_acc[4 * cc + u] = FMA(weight, do_tile[at], dv_acc[4 * cc + u]);                     \
                            dk_acc[4 * cc + u] = FMA(dscore, q_tile[at], dk_acc[4 * cc + u]);                      \
                        }                                                                                          \
                    }                                                                                              \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
        if (j >= keys) return;                                                                                     \
        const i64 out = (bg * keys + j) * head_dim;                                                                \
        _Pragma("unroll") for (int t = 0; t < NT_MAXD / 16; t++)                                                   \
        {                                                                                                          \
            const int d = 16 * t + c;                                                                              \
            if (d >= head_dim) continue;                                                                           \
            dk[out + d] = NARROW_##T(MUL_RN(scale, dk_acc[t]));                                                    \
            dv[out + d] = NARROW_##T(dv_acc[t]);                                                                   \
        }                                                                                                          \
    }

FORWARD_KERNEL(f32) FORWARD_KERNEL(f16) FORWARD_KERNEL(bf16)
DELTA_KERNEL(f32) DELTA_KERNEL(f16) DELTA_KERNEL(bf16)
DQ_KERNEL(f32) DQ_KERNEL(f16) DQ_KERNEL(bf16)
DKDV_KERNEL(f32) DKDV_KERNEL(f16) DKDV_KERNEL(bf16)
