using System.Runtime.InteropServices;
using NativeTensor.Runtime;

namespace NativeTensor.Cpu;

/// <summary>The forward and backward loops of <see cref="AttentionKernels"/> (see there for the scheme) at one vector width.</summary>
internal static unsafe class AttentionDriver<TLanes, TVector> where TLanes : IFloatLanes<TVector> where TVector : struct
{
    private const int BQ = AttentionKernels.QueryBlock, BK = AttentionKernels.KeyBlock;

    private static readonly float Log2E = (float)(1 / Math.Log(2));

    private static int Padded(int d) => (d + TLanes.Count - 1) / TLanes.Count * TLanes.Count;

    public static void Forward(in AttentionShape shape, byte* q, byte* k, byte* v, byte* output, float* logSumExp, SimdWidth width)
    {
        AttentionShape s = shape;
        int dp = Padded(s.HeadDim);
        long tiles = (s.Queries + BQ - 1L) / BQ;
        long work = (long)s.Batch * s.QueryHeads * s.Queries * Math.Min(s.Keys, s.Window > 0 ? s.Window : s.Keys) * s.HeadDim;
        AttentionKernels.Share(s.Batch * s.QueryHeads * tiles, work,
            () => new AttentionScratch(2L * BQ * dp + 2L * BK * dp + (long)BQ * BK + 2 * BQ + dp),
            (item, scratch) => ForwardTile(s, item / tiles, (int)(item % tiles * BQ), q, k, v, output, logSumExp, scratch, dp, width));
    }

    /// <summary>The queries [i0, i0 + QueryBlock) of head <paramref name="head"/> (batch-major: b Hq + h).</summary>
    private static void ForwardTile(in AttentionShape s, long head, int i0, byte* q, byte* k, byte* v, byte* output, float* logSumExp,
        AttentionScratch scratch, int dp, SimdWidth width)
    {
        using var regions = new Regions(scratch);
        float* qt = regions.Take(BQ * dp), ot = regions.Take(BQ * dp), kt = regions.Take(BK * dp), vt = regions.Take(BK * dp);
        float* scores = regions.Take(BQ * BK), max = regions.Take(BQ), sum = regions.Take(BQ);
        int rows = Math.Min(BQ, s.Queries - i0), d = s.HeadDim;
        long queryRow = head * s.Queries + i0, kvHead = head / s.QueryHeads * s.KvHeads + head % s.QueryHeads / s.Group;
        long keyRow0 = kvHead * s.KeyRows;
        float factor = s.Scale * Log2E;
        for (int r = 0; r < rows; r++)
        {
            AttentionRows.Widen(q, s.DType, queryRow + r, d, qt + r * dp, dp, width);
            AttentionTiles<TLanes, TVector>.Scale(qt + r * dp, dp, factor);
            max[r] = float.NegativeInfinity;
            sum[r] = 0;
        }
        NativeMemory.Clear(ot, (nuint)(rows * dp * 4));
        long first = s.Visible(i0).First, last = s.Visible(i0 + rows - 1).Last;
        for (long j0 = first; j0 <= last; j0 += BK)
        {
            int cols = (int)Math.Min(BK, last - j0 + 1);
            PackKeys(s, k, v, keyRow0, j0, cols, kt, vt, dp, width, transposeKeys: true);
            AttentionTiles<TLanes, TVector>.Product(qt, dp, kt, BK, scores, BK, rows, dp, BK, accumulate: false);
            for (int r = 0; r < rows; r++)
            {
                float* row = scores + r * BK;
                Mask(s, i0 + r, j0, cols, row, float.NegativeInfinity);
                float newMax = MathF.Max(max[r], AttentionTiles<TLanes, TVector>.RowMax(row, BK));
                if (newMax == float.NegativeInfinity)
                {
                    NativeMemory.Clear(row, BK * 4);    // nothing seen yet: no weight, and no -inf - -inf
                    continue;
                }
                float correction = (float)Math.Pow(2, (double)max[r] - newMax);
                sum[r] = sum[r] * correction + AttentionTiles<TLanes, TVector>.Exponentiate(row, BK, newMax);
                max[r] = newMax;
                if (correction != 1) AttentionTiles<TLanes, TVector>.Scale(ot + r * dp, dp, correction);
            }
            AttentionTiles<TLanes, TVector>.Product(scores, BK, vt, dp, ot, dp, rows, BK, dp, accumulate: true);
        }
        for (int r = 0; r < rows; r++)
        {
            float l = sum[r];
            if (l == 0) NativeMemory.Clear(ot + r * dp, (nuint)(dp * 4));
            else AttentionTiles<TLanes, TVector>.Scale(ot + r * dp, dp, 1 / l);
            AttentionRows.Narrow(ot + r * dp, output, s.DType, queryRow + r, d, width);
            if (logSumExp != null)
                logSumExp[queryRow + r] = l == 0 ? float.NegativeInfinity : (float)((max[r] + Math.Log2(l)) * Math.Log(2));
        }
    }

    /// <summary>
    /// Widens keys [j0, j0 + cols) of one head: k into <paramref name="kt"/> as [D, KeyBlock] (transposed, for S = Q K^T)
    /// or, without <paramref name="transposeKeys"/>, as [KeyBlock, D]; v into <paramref name="vt"/> as [KeyBlock, D] (for
    /// O += P V) or transposed (for dP = dO V^T) when <paramref name="transposeValues"/>. Padding rows and columns are 0.
    /// </summary>
    private static void PackKeys(in AttentionShape s, byte* k, byte* v, long keyRow0, long j0, int cols, float* kt, float* vt, int dp,
        SimdWidth width, bool transposeKeys, bool transposeValues = false, float* kRows = null)
    {
        int d = s.HeadDim;
        if (transposeKeys || transposeValues) NativeMemory.Clear(kt, (nuint)(dp * BK * 4));
        if (transposeValues) NativeMemory.Clear(vt, (nuint)(dp * BK * 4));
        else NativeMemory.Clear(vt + (long)cols * dp, (nuint)((BK - cols) * dp * 4));
        if (kRows != null) NativeMemory.Clear(kRows + (long)cols * dp, (nuint)((BK - cols) * dp * 4));
        float* row = stackalloc float[dp];
        for (int c = 0; c < cols; c++)
        {
            long storage = keyRow0 + AttentionRows.KeyRow(s, j0 + c);
            AttentionRows.Widen(k, s.DType, storage, d, row, dp, width);
            if (kRows != null) new Span<float>(row, dp).CopyTo(new Span<float>(kRows + (long)c * dp, dp));
            for (int e = 0; e < d; e++) kt[(long)e * BK + c] = row[e];
            if (transposeValues)
            {
                AttentionRows.Widen(v, s.DType, storage, d, row, dp, width);
                for (int e = 0; e < d; e++) vt[(long)e * BK + c] = row[e];
            }
            else AttentionRows.Widen(v, s.DType, storage, d, vt + (long)c * dp, dp, width);
        }
    }

    /// <summary>Sets the columns of a score row that query i does not see (keys outside its range, padding) to <paramref name="hidden"/>.</summary>
    private static void Mask(in AttentionShape s, long i, long j0, int cols, float* row, float hidden)
    {
        (long first, long last) = s.Visible(i);
        if (first <= j0 && last >= j0 + BK - 1) return;
        for (int c = 0; c < BK; c++)
        {
            long j = j0 + c;
            if (c >= cols || j < first || j > last) row[c] = hidden;
        }
    }

    public static void Backward(in AttentionShape shape, byte* outputGradient, byte* q, byte* k, byte* v, byte* output, float* logSumExp,
        float* delta, byte* dq, byte* dk, byte* dv, SimdWidth width)
    {
        AttentionShape s = shape;
        int dp = Padded(s.HeadDim), d = s.HeadDim;
        long visibleWork = (long)s.Batch * s.QueryHeads * s.Queries * Math.Min(s.Keys, s.Window > 0 ? s.Window : s.Keys) * d;

        // Δ_i = dO_i · O_i, row by row.
        AttentionKernels.Share(s.QueryRows, s.QueryRows * d, () => new AttentionScratch(2L * dp), (row, scratch) =>
        {
            using var regions = new Regions(scratch);
            float* a = regions.Take(dp), b = regions.Take(dp);
            AttentionRows.Widen(outputGradient, s.DType, row, d, a, dp, width);
            AttentionRows.Widen(output, s.DType, row, d, b, dp, width);
            delta[row] = AttentionTiles<TLanes, TVector>.Dot(a, b, dp);
        });

        long units = (long)s.Batch * s.KvHeads, keyTiles = (s.Keys + BK - 1L) / BK;
        int chunks = (int)Math.Clamp((Environment.ProcessorCount + units - 1) / units, 1, keyTiles);
        long queryElements = s.QueryElements;
        // One Float32 dQ accumulator per chunk of key tiles ([B, Hq, N, D]); a Float32 dq is the first chunk's own.
        bool direct = s.DType == DType.Float32;
        int accumulators = direct ? chunks - 1 : chunks;
        float* partials = accumulators == 0 ? null : (float*)NativeMemory.AlignedAlloc((nuint)(accumulators * queryElements * 4), 64);
        try
        {
            for (int a = 0; a < accumulators; a++) NativeMemory.Clear(partials + a * queryElements, (nuint)(queryElements * 4));
            if (direct) NativeMemory.Clear(dq, (nuint)(queryElements * 4));
            AttentionKernels.Share(units * chunks, 5 * visibleWork, () => new AttentionScratch(5L * BQ * dp + 5L * BK * dp + 4L * BQ * BK),
                (item, scratch) =>
                {
                    long unit = item / chunks;
                    int chunk = (int)(item % chunks);
                    float* accumulator = direct ? (chunk == 0 ? (float*)dq : partials + (chunk - 1) * queryElements) : partials + chunk * queryElements;
                    long firstTile = keyTiles * chunk / chunks, endTile = keyTiles * (chunk + 1) / chunks;
                    for (long tile = firstTile; tile < endTile; tile++)
                        BackwardKeyTile(s, unit, tile * BK, outputGradient, q, k, v, logSumExp, delta, accumulator, dk, dv, scratch, dp, width);
                });
            // dq = scale Σ_chunks dQ, chunk by chunk in order.
            float scale = s.Scale;
            AttentionKernels.Share(s.QueryRows, queryElements, () => new AttentionScratch(dp), (row, scratch) =>
            {
                using var regions = new Regions(scratch);
                float* total = direct ? (float*)dq + row * d : regions.Take(dp);
                if (!direct) new Span<float>(partials + row * d, d).CopyTo(new Span<float>(total, d));
                for (int a = direct ? 0 : 1; a < accumulators; a++)
                    AttentionTiles<TLanes, TVector>.AddInto(total, partials + a * queryElements + row * d, d);
                for (int e = 0; e < d; e++) total[e] *= scale;
                if (!direct) AttentionRows.Narrow(total, dq, s.DType, row, d, width);
            });
        }
        finally
        {
            if (partials != null) NativeMemory.AlignedFree(partials);
        }
    }

    /// <summary>
    /// The keys [j0, j0 + KeyBlock) of (batch, kv head) <paramref name="unit"/>: dK and dV over every query of the group's
    /// heads that sees them, and those queries' dS K added into <paramref name="accumulator"/> (Float32, [B, Hq, N, D]).
    /// </summary>
    private static void BackwardKeyTile(in AttentionShape s, long unit, long j0, byte* outputGradient, byte* q, byte* k, byte* v,
        float* logSumExp, float* delta, float* accumulator, byte* dk, byte* dv, AttentionScratch scratch, int dp, SimdWidth width)
    {
        using var regions = new Regions(scratch);
        float* qt = regions.Take(BQ * dp), dot = regions.Take(BQ * dp), product = regions.Take(BQ * dp);
        float* kt = regions.Take(BK * dp), vt = regions.Take(BK * dp), kRows = regions.Take(BK * dp), dkt = regions.Take(BK * dp), dvt = regions.Take(BK * dp);
        float* p = regions.Take(BQ * BK), dpt = regions.Take(BQ * BK), pT = regions.Take(BQ * BK), dsT = regions.Take(BQ * BK);
        int d = s.HeadDim, cols = (int)Math.Min(BK, s.Keys - j0);
        long b = unit / s.KvHeads, g = unit % s.KvHeads;
        PackKeys(s, k, v, unit * s.KeyRows, j0, cols, kt, vt, dp, width, transposeKeys: true, transposeValues: true, kRows: kRows);
        NativeMemory.Clear(dkt, (nuint)(BK * dp * 4));
        NativeMemory.Clear(dvt, (nuint)(BK * dp * 4));
        // Queries whose visible range meets [j0, j0 + cols): the range's ends rise with i, so they are one interval.
        long offset = (long)s.Keys - s.Queries, jEnd = j0 + cols - 1;
        long iFirst = s.Causal ? Math.Max(0, j0 - offset) : 0;
        long iLast = s.Window > 0 ? Math.Min(s.Queries - 1L, jEnd + s.Window - 1 - offset) : s.Queries - 1L;
        float factor = s.Scale * Log2E;
        for (int h = 0; h < s.Group; h++)
        {
            long head = b * s.QueryHeads + g * s.Group + h;
            for (long i0 = iFirst; i0 <= iLast; i0 += BQ)
            {
                int rows = (int)Math.Min(BQ, iLast - i0 + 1);
                long queryRow = head * s.Queries + i0;
                for (int r = 0; r < rows; r++)
                {
                    AttentionRows.Widen(q, s.DType, queryRow + r, d, qt + r * dp, dp, width);
                    AttentionTiles<TLanes, TVector>.Scale(qt + r * dp, dp, factor);
                    AttentionRows.Widen(outputGradient, s.DType, queryRow + r, d, dot + r * dp, dp, width);
                }
                AttentionTiles<TLanes, TVector>.Product(qt, dp, kt, BK, p, BK, rows, dp, BK, accumulate: false);
                AttentionTiles<TLanes, TVector>.Product(dot, dp, vt, BK, dpt, BK, rows, dp, BK, accumulate: false);
                for (int r = 0; r < rows; r++)
                {
                    float* row = p + r * BK;
                    AttentionTiles<TLanes, TVector>.Exponentiate(row, BK, logSumExp[queryRow + r] * Log2E);
                    Mask(s, i0 + r, j0, cols, row, 0);
                    AttentionTiles<TLanes, TVector>.ScoreGradient(row, dpt + r * BK, dpt + r * BK, BK, delta[queryRow + r]);
                }
                // Now p holds P and dpt holds dS, [rows, KeyBlock]; their transposes feed dV and dK.
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < BK; c++)
                    {
                        pT[c * BQ + r] = p[r * BK + c];
                        dsT[c * BQ + r] = dpt[r * BK + c];
                    }
                AttentionTiles<TLanes, TVector>.Product(pT, BQ, dot, dp, dvt, dp, BK, rows, dp, accumulate: true);
                AttentionTiles<TLanes, TVector>.Product(dsT, BQ, qt, dp, dkt, dp, BK, rows, dp, accumulate: true);
                AttentionTiles<TLanes, TVector>.Product(dpt, BK, kRows, dp, product, dp, rows, BK, dp, accumulate: false);
                for (int r = 0; r < rows; r++)
                    AttentionTiles<TLanes, TVector>.AddInto(accumulator + (queryRow + r) * d, product + r * dp, d);
            }
        }
        // Q was scaled by scale log2(e), so dK = scale Σ dS q = ln 2 Σ dS Q.
        float ln2 = (float)Math.Log(2);
        for (int c = 0; c < cols; c++)
        {
            AttentionTiles<TLanes, TVector>.Scale(dkt + c * dp, dp, ln2);
            long row = unit * s.Keys + j0 + c;
            AttentionRows.Narrow(dkt + c * dp, dk, s.DType, row, d, width);
            AttentionRows.Narrow(dvt + c * dp, dv, s.DType, row, d, width);
        }
    }

    /// <summary>Hands out a scratch's regions for one tile and gives them back when the tile is done.</summary>
    private ref struct Regions(AttentionScratch scratch)
    {
        public float* Take(long floats) => scratch.Take(floats);

        public void Dispose() => scratch.Reset();
    }
}
