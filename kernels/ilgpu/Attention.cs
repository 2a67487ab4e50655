using ILGPU;
using ILGPU.Algorithms;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/attention.cl</c> in ILGPU C#: scaled dot-product attention in the FlashAttention-2 scheme, forward
/// (online softmax over key tiles, no [N, M] matrix), delta, dq and dk/dv, with the .cl's tiles, staging, visible
/// ranges and order of every sum (see its header for the math, the index contract and the launch).
/// </summary>
/// <remarks>
/// Groups of exactly <see cref="Threads"/> = 256 threads, lid = 16 r + c; tiles of 16 queries by 16 keys; operands staged
/// widened in chunks of <see cref="Chunk"/> = 64 dims ([16][65] floats), the forward keeping its 16 x D queries whole.
/// In a score phase thread (r, c) scores query r against key c; in an accumulation phase it owns row r's dims
/// c + 16 t, t &lt; 16. The accumulators live in per-thread local memory (the .cl's unrolled register arrays; ILGPU has
/// no constant-indexed register arrays), which changes where they are kept, not the order of any sum. exp and log
/// are <see cref="XMath"/>'s binary32 functions (the .cl's EXP and LOG); each backend's library rounds them its own
/// way, which the tolerances count. A hidden key never enters a sum, and -inf - -inf never occurs.
/// </remarks>
internal static class Attention
{
    /// <summary>Queries per tile (NT_BQ).</summary>
    private const int QueryTile = 16;

    /// <summary>Keys per tile (NT_BK).</summary>
    private const int KeyTile = 16;

    /// <summary>Threads per group, exactly (NT_THREADS): 16 rows by 16 lanes.</summary>
    private const int Threads = 256;

    /// <summary>Dims per staged chunk (NT_CHUNK).</summary>
    private const int Chunk = 64;

    /// <summary>Floats between two rows of a staged chunk (NT_CPITCH).</summary>
    private const int ChunkPitch = Chunk + 1;

    /// <summary>Floats between two rows of a score tile (NT_SPITCH).</summary>
    private const int ScorePitch = KeyTile + 1;

    /// <summary>The largest head dimension (NT_MAXD, <c>Attention.MaxHeadDim</c>).</summary>
    private const int MaxDim = 256;

    /// <summary>Accumulators per thread: dims c + 16 t, t &lt; 16.</summary>
    private const int Owned = MaxDim / 16;

    [Entry("attention_forward_f32", typeof(uint), typeof(F32))]
    [Entry("attention_forward_f16", typeof(ushort), typeof(F16))]
    [Entry("attention_forward_bf16", typeof(ushort), typeof(BF16))]
    public static void Forward<T, TFormat>(ArrayView<T> q, ArrayView<T> k, ArrayView<T> v, ArrayView<T> o, ArrayView<float> lse,
        int query_heads, int kv_heads, int queries, int keys, int head_dim, int key_rows, int key_first, int window, uint flags, uint scale_bits)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        ArrayView<float> qTile = SharedMemory.Allocate<float>(QueryTile * MaxDim);
        ArrayView<float> kvTile = SharedMemory.Allocate<float>(KeyTile * ChunkPitch);
        ArrayView<float> sTile = SharedMemory.Allocate<float>(QueryTile * ScorePitch);
        ArrayView<float> pTile = SharedMemory.Allocate<float>(QueryTile * ScorePitch);
        ArrayView<float> acc = LocalMemory.Allocate<float>(Owned);
        int lid = Group.IdxX, r = lid / 16, c = lid % 16;
        bool causal = (flags & 1u) != 0u;
        float scale = Dialect.AsFloat(scale_bits);
        long tiles = ((long)queries + QueryTile - 1) / QueryTile;
        long bh = Grid.IdxX / tiles, i0 = Grid.IdxX % tiles * QueryTile;
        long b = bh / query_heads, h = bh % query_heads, g = h / (query_heads / kv_heads);
        long qBase = bh * queries * head_dim, kvBase = (b * kv_heads + g) * key_rows * head_dim;
        long offset = (long)keys - queries, i = i0 + r, p = offset + i;
        bool valid = i < queries;
        for (int e = lid; e < QueryTile * head_dim; e += Threads)
        {
            long row = i0 + e / head_dim;
            qTile[e] = row < queries ? default(TFormat).Widen(q[qBase + row * head_dim + e % head_dim]) : 0.0f;
        }
        long lastQuery = i0 + QueryTile - 1 < queries ? i0 + QueryTile - 1 : (long)queries - 1;
        long first = FirstKey(offset + i0, window), last = LastKey(offset + lastQuery, keys, causal);
        float m = float.NegativeInfinity, l = 0.0f;
        for (int t = 0; t < Owned; t++) acc[t] = 0.0f;
        for (long j0 = first; j0 <= last; j0 += KeyTile)
        {
            float dot = 0.0f;
            for (int d0 = 0; d0 < head_dim; d0 += Chunk)
            {
                Group.Barrier();
                Stage<T, TFormat>(kvTile, k, kvBase, j0, keys, head_dim, d0, true, key_rows, key_first, lid);
                Group.Barrier();
                int n = head_dim - d0 < Chunk ? head_dim - d0 : Chunk;
                for (int e = 0; e < n; e++) dot = Dialect.Fma(qTile[r * head_dim + d0 + e], kvTile[c * ChunkPitch + e], dot);
            }
            bool seen = valid && j0 + c <= last && Visible(p, j0 + c, causal, window);
            float s = seen ? Dialect.MulRn(scale, dot) : float.NegativeInfinity;
            sTile[r * ScorePitch + c] = s;
            Group.Barrier();
            float mNew = m;
            for (int jj = 0; jj < KeyTile; jj++) mNew = sTile[r * ScorePitch + jj] > mNew ? sTile[r * ScorePitch + jj] : mNew;
            pTile[r * ScorePitch + c] = seen ? XMath.Exp(Dialect.AddRn(s, -mNew)) : 0.0f;
            float alpha = m == float.NegativeInfinity ? 0.0f : XMath.Exp(Dialect.AddRn(m, -mNew));
            m = mNew;
            Group.Barrier();
            float rowSum = 0.0f;
            for (int jj = 0; jj < KeyTile; jj++) rowSum = Dialect.AddRn(rowSum, pTile[r * ScorePitch + jj]);
            l = Dialect.AddRn(Dialect.MulRn(l, alpha), rowSum);
            for (int t = 0; t < Owned; t++) acc[t] = Dialect.MulRn(acc[t], alpha);
            WeightedRows<T, TFormat>(acc, kvTile, pTile.SubView(r * ScorePitch, KeyTile), v, kvBase, j0, keys, head_dim, key_rows, key_first,
                lid, c, valid, last, p, causal, window);
        }
        if (!valid) return;
        for (int t = 0; t < Owned; t++)
        {
            int d = 16 * t + c;
            if (d < head_dim) o[qBase + i * head_dim + d] = default(TFormat).Narrow(l > 0.0f ? Dialect.DivRn(acc[t], l) : 0.0f);
        }
        if ((flags & 2u) != 0u && c == 0) lse[bh * queries + i] = l > 0.0f ? Dialect.AddRn(m, XMath.Log(l)) : float.NegativeInfinity;
    }

    /// <summary><c>delta[row] = dO[row, :] . O[row, :]</c>, one FMA chain from +0 over d in order; grid-stride, a thread per row.</summary>
    [Entry("attention_delta_f32", typeof(uint), typeof(F32))]
    [Entry("attention_delta_f16", typeof(ushort), typeof(F16))]
    [Entry("attention_delta_bf16", typeof(ushort), typeof(BF16))]
    public static void Delta<T, TFormat>(ArrayView<T> d_o, ArrayView<T> o, ArrayView<float> delta, long rows, int head_dim)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        for (long row = Dialect.GlobalIndex; row < rows; row += Dialect.GridStride)
        {
            float sum = 0.0f;
            for (int d = 0; d < head_dim; d++)
                sum = Dialect.Fma(default(TFormat).Widen(d_o[row * head_dim + d]), default(TFormat).Widen(o[row * head_dim + d]), sum);
            delta[row] = sum;
        }
    }

    [Entry("attention_dq_f32", typeof(uint), typeof(F32))]
    [Entry("attention_dq_f16", typeof(ushort), typeof(F16))]
    [Entry("attention_dq_bf16", typeof(ushort), typeof(BF16))]
    public static void Dq<T, TFormat>(ArrayView<T> d_o, ArrayView<T> q, ArrayView<T> k, ArrayView<T> v, ArrayView<float> lse,
        ArrayView<float> delta, ArrayView<T> dq, int query_heads, int kv_heads, int queries, int keys, int head_dim, int window,
        uint flags, uint scale_bits)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        int key_rows = keys, key_first = 0; // the backward reads dense keys
        ArrayView<float> qTile = SharedMemory.Allocate<float>(QueryTile * ChunkPitch);
        ArrayView<float> doTile = SharedMemory.Allocate<float>(QueryTile * ChunkPitch);
        ArrayView<float> kTile = SharedMemory.Allocate<float>(KeyTile * ChunkPitch);
        ArrayView<float> vTile = SharedMemory.Allocate<float>(KeyTile * ChunkPitch);
        ArrayView<float> dsTile = SharedMemory.Allocate<float>(QueryTile * ScorePitch);
        ArrayView<float> acc = LocalMemory.Allocate<float>(Owned);
        int lid = Group.IdxX, r = lid / 16, c = lid % 16;
        bool causal = (flags & 1u) != 0u;
        float scale = Dialect.AsFloat(scale_bits);
        long tiles = ((long)queries + QueryTile - 1) / QueryTile;
        long bh = Grid.IdxX / tiles, i0 = Grid.IdxX % tiles * QueryTile;
        long b = bh / query_heads, h = bh % query_heads, g = h / (query_heads / kv_heads);
        long qBase = bh * queries * head_dim, kvBase = (b * kv_heads + g) * key_rows * head_dim;
        long offset = (long)keys - queries, i = i0 + r, p = offset + i;
        bool valid = i < queries;
        float lseR = valid ? lse[bh * queries + i] : 0.0f, deltaR = valid ? delta[bh * queries + i] : 0.0f;
        long lastQuery = i0 + QueryTile - 1 < queries ? i0 + QueryTile - 1 : (long)queries - 1;
        long first = FirstKey(offset + i0, window), last = LastKey(offset + lastQuery, keys, causal);
        for (int t = 0; t < Owned; t++) acc[t] = 0.0f;
        for (long j0 = first; j0 <= last; j0 += KeyTile)
        {
            bool seen = valid && j0 + c <= last && Visible(p, j0 + c, causal, window);
            dsTile[r * ScorePitch + c] = Scores<T, TFormat>(qTile, doTile, kTile, vTile, d_o, q, k, v, qBase, kvBase, i0, j0, queries, keys,
                head_dim, key_rows, key_first, seen, lseR, deltaR, scale, lid, r, c, out _);
            WeightedRows<T, TFormat>(acc, kTile, dsTile.SubView(r * ScorePitch, KeyTile), k, kvBase, j0, keys, head_dim, key_rows, key_first,
                lid, c, valid, last, p, causal, window);
        }
        if (!valid) return;
        for (int t = 0; t < Owned; t++)
        {
            int d = 16 * t + c;
            if (d < head_dim) dq[qBase + i * head_dim + d] = default(TFormat).Narrow(Dialect.MulRn(scale, acc[t]));
        }
    }

    [Entry("attention_dkdv_f32", typeof(uint), typeof(F32))]
    [Entry("attention_dkdv_f16", typeof(ushort), typeof(F16))]
    [Entry("attention_dkdv_bf16", typeof(ushort), typeof(BF16))]
    public static void DkDv<T, TFormat>(ArrayView<T> d_o, ArrayView<T> q, ArrayView<T> k, ArrayView<T> v, ArrayView<float> lse,
        ArrayView<float> delta, ArrayView<T> dk, ArrayView<T> dv, int query_heads, int kv_heads, int queries, int keys, int head_dim,
        int window, uint flags, uint scale_bits)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        int key_rows = keys, key_first = 0; // the backward reads dense keys
        ArrayView<float> qTile = SharedMemory.Allocate<float>(QueryTile * ChunkPitch);
        ArrayView<float> doTile = SharedMemory.Allocate<float>(QueryTile * ChunkPitch);
        ArrayView<float> kTile = SharedMemory.Allocate<float>(KeyTile * ChunkPitch);
        ArrayView<float> vTile = SharedMemory.Allocate<float>(KeyTile * ChunkPitch);
        ArrayView<float> pTile = SharedMemory.Allocate<float>(QueryTile * ScorePitch);
        ArrayView<float> dsTile = SharedMemory.Allocate<float>(QueryTile * ScorePitch);
        ArrayView<float> dkAcc = LocalMemory.Allocate<float>(Owned);
        ArrayView<float> dvAcc = LocalMemory.Allocate<float>(Owned);
        int lid = Group.IdxX, r = lid / 16, c = lid % 16;
        bool causal = (flags & 1u) != 0u;
        float scale = Dialect.AsFloat(scale_bits);
        long tiles = ((long)keys + KeyTile - 1) / KeyTile;
        long bg = Grid.IdxX / tiles, j0 = Grid.IdxX % tiles * KeyTile;
        long b = bg / kv_heads, g = bg % kv_heads, group = query_heads / kv_heads;
        long kvBase = bg * key_rows * head_dim, j = j0 + r;
        long offset = (long)keys - queries;
        long lastKey = j0 + KeyTile - 1 < keys ? j0 + KeyTile - 1 : (long)keys - 1;
        // Query i sees key j only if i >= j - offset (causal) and i <= j + window - 1 - offset (window).
        long first = causal && j0 - offset > 0 ? j0 - offset : 0;
        long last = window > 0 && lastKey + window - 1 - offset < queries - 1 ? lastKey + window - 1 - offset : (long)queries - 1;
        for (int t = 0; t < Owned; t++)
        {
            dkAcc[t] = 0.0f;
            dvAcc[t] = 0.0f;
        }
        for (long hh = 0; hh < group; hh++)
        {
            long bh = b * query_heads + g * group + hh, qBase = bh * queries * head_dim;
            for (long i0 = first; i0 <= last; i0 += QueryTile)
            {
                // Score phase: thread (r, c) = (query i0 + r, key j0 + c).
                long i = i0 + r;
                bool seen = i <= last && j0 + c < keys && Visible(offset + i, j0 + c, causal, window);
                float lseR = seen ? lse[bh * queries + i] : 0.0f;
                float deltaR = seen ? delta[bh * queries + i] : 0.0f;
                float ds = Scores<T, TFormat>(qTile, doTile, kTile, vTile, d_o, q, k, v, qBase, kvBase, i0, j0, queries, keys, head_dim,
                    key_rows, key_first, seen, lseR, deltaR, scale, lid, r, c, out float pr);
                pTile[r * ScorePitch + c] = pr;
                dsTile[r * ScorePitch + c] = ds;
                // Accumulation phase: thread (r, c) = (key j0 + r, dims c + 16 t).
                for (int cc = 0; cc * Chunk < head_dim; cc++)
                {
                    Group.Barrier();
                    Stage<T, TFormat>(qTile, q, qBase, i0, queries, head_dim, cc * Chunk, false, key_rows, key_first, lid);
                    Stage<T, TFormat>(doTile, d_o, qBase, i0, queries, head_dim, cc * Chunk, false, key_rows, key_first, lid);
                    Group.Barrier();
                    for (int qq = 0; qq < QueryTile; qq++)
                    {
                        if (!(i0 + qq <= last && j < keys && Visible(offset + i0 + qq, j, causal, window))) continue;
                        float weight = pTile[qq * ScorePitch + r], dscore = dsTile[qq * ScorePitch + r];
                        for (int u = 0; u < 4; u++)
                        {
                            int at = qq * ChunkPitch + 16 * u + c;
                            dvAcc[4 * cc + u] = Dialect.Fma(weight, doTile[at], dvAcc[4 * cc + u]);
                            dkAcc[4 * cc + u] = Dialect.Fma(dscore, qTile[at], dkAcc[4 * cc + u]);
                        }
                    }
                }
            }
        }
        if (j >= keys) return;
        long output = (bg * keys + j) * head_dim;
        for (int t = 0; t < Owned; t++)
        {
            int d = 16 * t + c;
            if (d >= head_dim) continue;
            dk[output + d] = default(TFormat).Narrow(Dialect.MulRn(scale, dkAcc[t]));
            dv[output + d] = default(TFormat).Narrow(dvAcc[t]);
        }
    }

    /// <summary>
    /// The backward's score phase for a 16 x 16 tile (<c>nt_scores_*</c>): stages q, dO, k, v chunk by chunk; thread
    /// (r, c) returns dS of query r and key c and puts P in <paramref name="probability"/> (both 0 where hidden).
    /// </summary>
    private static float Scores<T, TFormat>(ArrayView<float> qTile, ArrayView<float> doTile, ArrayView<float> kTile, ArrayView<float> vTile,
        ArrayView<T> d_o, ArrayView<T> q, ArrayView<T> k, ArrayView<T> v, long qBase, long kvBase, long i0, long j0, int queries, int keys,
        int head_dim, int key_rows, int key_first, bool seen, float lseR, float deltaR, float scale, int lid, int r, int c, out float probability)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        float dot = 0.0f, dp = 0.0f;
        for (int d0 = 0; d0 < head_dim; d0 += Chunk)
        {
            Group.Barrier();
            Stage<T, TFormat>(qTile, q, qBase, i0, queries, head_dim, d0, false, key_rows, key_first, lid);
            Stage<T, TFormat>(doTile, d_o, qBase, i0, queries, head_dim, d0, false, key_rows, key_first, lid);
            Stage<T, TFormat>(kTile, k, kvBase, j0, keys, head_dim, d0, true, key_rows, key_first, lid);
            Stage<T, TFormat>(vTile, v, kvBase, j0, keys, head_dim, d0, true, key_rows, key_first, lid);
            Group.Barrier();
            int n = head_dim - d0 < Chunk ? head_dim - d0 : Chunk;
            for (int e = 0; e < n; e++)
            {
                dot = Dialect.Fma(qTile[r * ChunkPitch + e], kTile[c * ChunkPitch + e], dot);
                dp = Dialect.Fma(doTile[r * ChunkPitch + e], vTile[c * ChunkPitch + e], dp);
            }
        }
        if (!seen)
        {
            probability = 0.0f;
            return 0.0f;
        }
        float pr = XMath.Exp(Dialect.AddRn(Dialect.MulRn(scale, dot), -lseR));
        probability = pr;
        return Dialect.MulRn(pr, Dialect.AddRn(dp, -deltaR));
    }

    /// <summary>
    /// Stages dims [d0, d0 + 64) of 16 rows into <c>tile[row * ChunkPitch + dd]</c>, widened (<c>nt_stage_*</c>): queries
    /// i0.. of a dense head, or keys j0.. of a store by ring addressing; +0 past <paramref name="count"/> rows or D dims.
    /// </summary>
    private static void Stage<T, TFormat>(ArrayView<float> tile, ArrayView<T> x, long xBase, long row0, long count, int head_dim, int d0,
        bool ring, int key_rows, int key_first, int lid)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        for (int s = 0; s < KeyTile * Chunk / Threads; s++)
        {
            int e = lid + s * Threads, row = e / Chunk, dd = e % Chunk;
            long j = row0 + row;
            float value = 0.0f;
            if (j < count && d0 + dd < head_dim)
            {
                long at = ring ? KeyRow(j, key_rows, key_first) : j;
                value = default(TFormat).Widen(x[xBase + at * head_dim + d0 + dd]);
            }
            tile[row * ChunkPitch + dd] = value;
        }
    }

    /// <summary>
    /// <c>acc[t] += weights[jj] * row jj</c> (dim 16 t + c) for each key j0 + jj of the tile that the query at position p
    /// sees, in key order, the rows staged chunk by chunk into <paramref name="tile"/> (<c>nt_weighted_rows_*</c>): the
    /// forward's P V and dq's dS K. Every thread of the group calls it (it holds barriers).
    /// </summary>
    private static void WeightedRows<T, TFormat>(ArrayView<float> acc, ArrayView<float> tile, ArrayView<float> weights, ArrayView<T> rows,
        long kvBase, long j0, int keys, int head_dim, int key_rows, int key_first, int lid, int c, bool valid, long last, long p, bool causal,
        int window)
        where T : unmanaged where TFormat : struct, IFloatFormat<T>
    {
        for (int cc = 0; cc * Chunk < head_dim; cc++)
        {
            Group.Barrier();
            Stage<T, TFormat>(tile, rows, kvBase, j0, keys, head_dim, cc * Chunk, true, key_rows, key_first, lid);
            Group.Barrier();
            for (int jj = 0; jj < KeyTile; jj++)
            {
                if (!(valid && j0 + jj <= last && Visible(p, j0 + jj, causal, window))) continue;
                float weight = weights[jj];
                for (int u = 0; u < 4; u++)
                    acc[4 * cc + u] = Dialect.Fma(weight, tile[jj * ChunkPitch + 16 * u + c], acc[4 * cc + u]);
            }
        }
    }

    /// <summary>Whether the query at position p sees key j (<c>nt_visible</c>).</summary>
    private static bool Visible(long p, long j, bool causal, int window) => (!causal || j <= p) && (window == 0 || j > p - window);

    /// <summary>The storage row of key j: key_first + j, wrapped once around the ring (<c>nt_key_row</c>).</summary>
    private static long KeyRow(long j, int keyRows, int keyFirst)
    {
        long row = keyFirst + j;
        return row >= keyRows ? row - keyRows : row;
    }

    /// <summary>The first key the query at position p0 sees (<c>nt_first_key</c>).</summary>
    private static long FirstKey(long p0, int window) => window > 0 ? (p0 - window + 1 > 0 ? p0 - window + 1 : 0) : 0;

    /// <summary>The last key the query at position p1 sees (<c>nt_last_key</c>).</summary>
    private static long LastKey(long p1, int keys, bool causal) => causal ? (p1 < keys - 1 ? p1 : (long)keys - 1) : (long)keys - 1;
}
