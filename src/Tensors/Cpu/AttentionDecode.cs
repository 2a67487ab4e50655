using System.Runtime.InteropServices;
using NativeTensor.Runtime;

namespace NativeTensor.Cpu;

/// <summary>
/// The forward for few queries per key/value head (decode: one token, or a short block, over a long cache), where the
/// tiled forward would widen and transpose every key tile for one or two rows of queries and so run far below the
/// memory's speed. Here the keys are the stream and the queries stay in registers' reach:
/// <code>
/// per (batch, kv head, chunk of keys), the chunks shared out over the cores:
///   Q = every query row of the group's heads (h, i), widened, times scale log2(e)
///   for each block of KeyBlock keys in the chunk: widen K and V once (a Float32 store is read in place)
///     S[r, c] = Q_r · K_c (one dot product per pair, each key read once for all rows); hidden keys -inf
///     online softmax per row as the tiled forward; O += P V
/// then, per query row, the chunks' (m, l, O) merged in chunk order: M = max m_c, l = Σ l_c 2^(m_c - M),
/// O = Σ O_c 2^(m_c - M) / l (the split-key scheme of flash decoding), so the result does not depend on scheduling.
/// </code>
/// Each key and value byte is read once per call, whatever the group size.
/// </summary>
internal static unsafe class AttentionDecode<TLanes, TVector> where TLanes : IFloatLanes<TVector> where TVector : struct
{
    private const int BK = AttentionKernels.KeyBlock;

    /// <summary>Keys per chunk at least: fewer and the merge and start-up outweigh the keys.</summary>
    private const int MinChunkKeys = 1024;

    private static readonly float Log2E = (float)(1 / Math.Log(2));

    public static void Forward(in AttentionShape shape, byte* q, byte* k, byte* v, byte* output, float* logSumExp, SimdWidth width)
    {
        AttentionShape s = shape;
        int dp = (s.HeadDim + TLanes.Count - 1) / TLanes.Count * TLanes.Count, rows = s.Group * s.Queries;
        long units = (long)s.Batch * s.KvHeads;
        (long first, long last) = (s.Visible(0).First, s.Visible(s.Queries - 1).Last);
        long span = Math.Max(0, last - first + 1);
        int chunks = (int)Math.Clamp(Math.Min((2L * Environment.ProcessorCount + units - 1) / units, span / MinChunkKeys), 1, 1024);
        long items = units * chunks;
        float* partials = (float*)NativeMemory.AlignedAlloc((nuint)(items * rows * (dp + 2) * 4), 64);
        try
        {
            AttentionKernels.Share(items, units * span * rows * s.HeadDim, () => new AttentionScratch((long)rows * dp + (long)rows * BK + 2L * BK * dp),
                (item, scratch) =>
                {
                    long begin = first + span * (item % chunks) / chunks, end = first + span * (item % chunks + 1) / chunks;
                    float* part = partials + item * rows * (dp + 2);
                    Chunk(s, item / chunks, begin, end, q, k, v, part, part + (long)rows * dp, part + (long)rows * dp + rows, scratch, dp, rows, width);
                });
            Merge(s, partials, chunks, dp, rows, output, logSumExp, width);
        }
        finally
        {
            NativeMemory.AlignedFree(partials);
        }
    }

    /// <summary>Keys [begin, end) of (batch, kv head) <paramref name="unit"/> for every query row of its group: O unnormalised, m, l.</summary>
    private static void Chunk(in AttentionShape s, long unit, long begin, long end, byte* q, byte* k, byte* v, float* o, float* max, float* sum,
        AttentionScratch scratch, int dp, int rows, SimdWidth width)
    {
        float* qt = scratch.Take((long)rows * dp), scores = scratch.Take((long)rows * BK), kb = scratch.Take((long)BK * dp), vb = scratch.Take((long)BK * dp);
        int d = s.HeadDim;
        long b = unit / s.KvHeads, g = unit % s.KvHeads, keyRow0 = unit * s.KeyRows;
        float factor = s.Scale * Log2E;
        for (int r = 0; r < rows; r++)
        {
            long head = b * s.QueryHeads + g * s.Group + r / s.Queries;
            AttentionRows.Widen(q, s.DType, head * s.Queries + r % s.Queries, d, qt + (long)r * dp, dp, width);
            AttentionTiles<TLanes, TVector>.Scale(qt + (long)r * dp, dp, factor);
            max[r] = float.NegativeInfinity;
            sum[r] = 0;
        }
        NativeMemory.Clear(o, (nuint)((long)rows * dp * 4));
        for (long j0 = begin; j0 < end; j0 += BK)
        {
            int cols = (int)Math.Min(BK, end - j0);
            float* keys = kb, values = vb;
            long row0 = AttentionRows.KeyRow(s, j0);
            if (row0 + cols <= s.KeyRows && d == dp)
            {
                // Rows side by side in storage (no ring wrap inside the block) and no padding: Float32 is read in place,
                // 16-bit stores are widened in one call per block.
                long offset = (keyRow0 + row0) * d;
                if (s.DType == DType.Float32)
                {
                    keys = (float*)k + offset;
                    values = (float*)v + offset;
                }
                else
                {
                    PrecisionKernels.ConvertSerial(k + offset * 2, s.DType, (byte*)kb, DType.Float32, (long)cols * d, width);
                    PrecisionKernels.ConvertSerial(v + offset * 2, s.DType, (byte*)vb, DType.Float32, (long)cols * d, width);
                }
            }
            else
                for (int c = 0; c < cols; c++)
                {
                    long storage = keyRow0 + AttentionRows.KeyRow(s, j0 + c);
                    AttentionRows.Widen(k, s.DType, storage, d, kb + (long)c * dp, dp, width);
                    AttentionRows.Widen(v, s.DType, storage, d, vb + (long)c * dp, dp, width);
                }
            for (int r = 0; r < rows; r++)
            {
                float* row = scores + (long)r * BK;
                for (int c = 0; c < cols; c++) row[c] = AttentionTiles<TLanes, TVector>.Dot(qt + (long)r * dp, keys + (long)c * dp, dp);
                HideInvisible(s, r % s.Queries, j0, cols, row);
                float newMax = MathF.Max(max[r], AttentionTiles<TLanes, TVector>.RowMax(row, BK));
                if (newMax == float.NegativeInfinity)
                {
                    NativeMemory.Clear(row, BK * 4);
                    continue;
                }
                float correction = (float)Math.Pow(2, (double)max[r] - newMax);
                sum[r] = sum[r] * correction + AttentionTiles<TLanes, TVector>.Exponentiate(row, BK, newMax);
                max[r] = newMax;
                if (correction != 1) AttentionTiles<TLanes, TVector>.Scale(o + (long)r * dp, dp, correction);
            }
            AttentionTiles<TLanes, TVector>.Product(scores, BK, values, dp, o, dp, rows, cols, dp, accumulate: true);
        }
        scratch.Reset();
    }

    /// <summary>Sets the scores of keys query i does not see, and the padding past <paramref name="cols"/>, to -inf.</summary>
    private static void HideInvisible(in AttentionShape s, long i, long j0, int cols, float* row)
    {
        (long first, long last) = s.Visible(i);
        if (cols == BK && first <= j0 && last >= j0 + BK - 1) return;
        for (int c = 0; c < BK; c++)
        {
            long j = j0 + c;
            if (c >= cols || j < first || j > last) row[c] = float.NegativeInfinity;
        }
    }

    /// <summary>Per query row, the chunks' partial results merged in chunk order, normalised and stored with the log-sum-exp.</summary>
    private static void Merge(in AttentionShape s, float* partials, int chunks, int dp, int rows, byte* output, float* logSumExp, SimdWidth width)
    {
        long units = (long)s.Batch * s.KvHeads;
        float* total = stackalloc float[dp];
        for (long unit = 0; unit < units; unit++)
            for (int r = 0; r < rows; r++)
            {
                float best = float.NegativeInfinity;
                for (int c = 0; c < chunks; c++) best = MathF.Max(best, Part(partials, unit * chunks + c, rows, dp)[(long)rows * dp + r]);
                float l = 0;
                NativeMemory.Clear(total, (nuint)(dp * 4));
                if (best != float.NegativeInfinity)
                    for (int c = 0; c < chunks; c++)
                    {
                        float* part = Part(partials, unit * chunks + c, rows, dp);
                        float m = part[(long)rows * dp + r];
                        if (m == float.NegativeInfinity) continue;
                        float weight = (float)Math.Pow(2, (double)m - best);
                        l += part[(long)rows * dp + rows + r] * weight;
                        for (int e = 0; e < dp; e++) total[e] += part[(long)r * dp + e] * weight;
                    }
                if (l != 0) AttentionTiles<TLanes, TVector>.Scale(total, dp, 1 / l);
                long b = unit / s.KvHeads, g = unit % s.KvHeads;
                long queryRow = (b * s.QueryHeads + g * s.Group + r / s.Queries) * s.Queries + r % s.Queries;
                AttentionRows.Narrow(total, output, s.DType, queryRow, s.HeadDim, width);
                if (logSumExp != null)
                    logSumExp[queryRow] = l == 0 ? float.NegativeInfinity : (float)((best + Math.Log2(l)) * Math.Log(2));
            }
    }

    private static float* Part(float* partials, long item, int rows, int dp) => partials + item * rows * (dp + 2);
}
