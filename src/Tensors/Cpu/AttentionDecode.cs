using System.Runtime.CompilerServices;
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
///   for each block of KeyBlock keys in the chunk:
///     per query row r:
///       S[c] = Q_r · K_c, the products of Count keys summed across lanes at once (SumEach); hidden keys -inf
///       online softmax as the tiled forward; O_r += P V
/// then, per query row, the chunks' (m, l, O) merged in chunk order: M = max m_c, l = Σ l_c 2^(m_c - M),
/// O = Σ O_c 2^(m_c - M) / l (the split-key scheme of flash decoding), so the result does not depend on scheduling.
/// </code>
/// Keys and values are read where they are stored: Float32 as it is, BFloat16 as pairs widened in registers (a shift
/// and a mask per pair of vectors; q and O take the same even/odd order and O is put back in order at the end). Float16,
/// a ring's wrap and a head dimension that is not a whole number of vector pairs go through a block copy first. Each key
/// and value byte comes from memory once per call, whatever the group size. The loops are compiled fully optimised at
/// their first call (AggressiveOptimization): left to tiered compilation, a dtype's first instances run unoptimised, ten
/// times slower, for as long as the runtime takes to promote them, which outlasted a second of warm-up in perf.
/// </summary>
internal static unsafe class AttentionDecode<TLanes, TVector> where TLanes : IFloatLanes<TVector> where TVector : struct
{
    private const int BK = AttentionKernels.KeyBlock;

    /// <summary>Keys per chunk at least: fewer and the merge and start-up outweigh the keys.</summary>
    private const int MinChunkKeys = 1024;

    private static readonly float Log2E = (float)(1 / Math.Log(2));

    /// <summary>How a row of keys or values is read: 2 Count elements at a time as two vectors of Count floats.</summary>
    private interface IRows
    {
        /// <summary>Bytes per stored element.</summary>
        static abstract int ElementBytes { get; }
        /// <summary>
        /// Whether the two vectors hold the elements of the pair alternately (BFloat16: even = elements 2t, odd = 2t + 1)
        /// rather than the first Count and the next Count (Float32).
        /// </summary>
        static abstract bool Interleaved { get; }
        /// <summary>Elements [element, element + 2 Count) of the row as Float32.</summary>
        static abstract void Load(byte* row, int element, out TVector even, out TVector odd);
    }

    private readonly struct Float32Rows : IRows
    {
        public static int ElementBytes => 4;
        public static bool Interleaved => false;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* row, int element, out TVector even, out TVector odd)
        {
            even = TLanes.Load((float*)row + element);
            odd = TLanes.Load((float*)row + element + TLanes.Count);
        }
    }

    private readonly struct BFloat16Pairs : IRows
    {
        public static int ElementBytes => 2;
        public static bool Interleaved => true;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* row, int element, out TVector even, out TVector odd) =>
            TLanes.LoadBFloat16Pairs((uint*)row + (uint)element / 2, out even, out odd);
    }

    public static void Forward(in AttentionShape shape, byte* q, byte* k, byte* v, byte* output, float* logSumExp, SimdWidth width)
    {
        if (shape.DType == DType.BFloat16) Forward<BFloat16Pairs>(shape, q, k, v, output, logSumExp, width);
        else Forward<Float32Rows>(shape, q, k, v, output, logSumExp, width);
    }

    private static void Forward<TRows>(in AttentionShape shape, byte* q, byte* k, byte* v, byte* output, float* logSumExp, SimdWidth width)
        where TRows : IRows
    {
        AttentionShape s = shape;
        int pair = 2 * TLanes.Count, dp = (s.HeadDim + pair - 1) / pair * pair, rows = s.Group * s.Queries;
        long units = (long)s.Batch * s.KvHeads;
        (long first, long last) = (s.Visible(0).First, s.Visible(s.Queries - 1).Last);
        long span = Math.Max(0, last - first + 1);
        int chunks = (int)Math.Clamp(Math.Min((2L * Environment.ProcessorCount + units - 1) / units, span / MinChunkKeys), 1, 1024);
        long items = units * chunks;
        float* partials = (float*)NativeMemory.AlignedAlloc((nuint)(items * rows * (dp + 2) * 4), 64);
        try
        {
            long scratchFloats = (long)rows * dp + (long)rows * BK + (long)TLanes.Count * TLanes.Count + 2L * BK * dp;
            AttentionKernels.Share(items, units * span * rows * s.HeadDim, () => new AttentionScratch(scratchFloats),
                (item, scratch) =>
                {
                    long begin = first + span * (item % chunks) / chunks, end = first + span * (item % chunks + 1) / chunks;
                    float* part = partials + item * rows * (dp + 2);
                    Chunk<TRows>(s, item / chunks, begin, end, q, k, v, part, part + (long)rows * dp, part + (long)rows * dp + rows, scratch, dp, rows, width);
                });
            Merge(s, partials, chunks, dp, rows, output, logSumExp, width);
        }
        finally
        {
            NativeMemory.AlignedFree(partials);
        }
    }

    /// <summary>Keys [begin, end) of (batch, kv head) <paramref name="unit"/> for every query row of its group: O unnormalised, m, l.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Chunk<TRows>(in AttentionShape s, long unit, long begin, long end, byte* q, byte* k, byte* v, float* o, float* max, float* sum,
        AttentionScratch scratch, int dp, int rows, SimdWidth width) where TRows : IRows
    {
        float* qt = scratch.Take((long)rows * dp), scores = scratch.Take((long)rows * BK), lanes = scratch.Take((long)TLanes.Count * TLanes.Count);
        float* kb = scratch.Take((long)BK * dp), vb = scratch.Take((long)BK * dp);
        int d = s.HeadDim;
        long b = unit / s.KvHeads, g = unit % s.KvHeads, keyRow0 = unit * s.KeyRows, rowBytes = (long)d * s.DType.SizeOf();
        float factor = s.Scale * Log2E;
        for (int r = 0; r < rows; r++)
        {
            long head = b * s.QueryHeads + g * s.Group + r / s.Queries;
            AttentionRows.Widen(q, s.DType, head * s.Queries + r % s.Queries, d, qt + (long)r * dp, dp, width);
            AttentionTiles<TLanes, TVector>.Scale(qt + (long)r * dp, dp, factor);
            if (TRows.Interleaved) Reorder(qt + (long)r * dp, dp, toPairs: true);
            max[r] = float.NegativeInfinity;
            sum[r] = 0;
        }
        NativeMemory.Clear(o, (nuint)((long)rows * dp * 4));
        for (long j0 = begin; j0 < end; j0 += BK)
        {
            int cols = (int)Math.Min(BK, end - j0);
            long row0 = AttentionRows.KeyRow(s, j0);
            byte* keys = (byte*)kb, values = (byte*)vb;
            long stride = (long)dp * TRows.ElementBytes;
            if (InPlace(s, row0, cols, dp))
            {
                keys = k + (keyRow0 + row0) * rowBytes;
                values = v + (keyRow0 + row0) * rowBytes;
                stride = rowBytes;
            }
            else
                for (int c = 0; c < cols; c++)
                {
                    long storage = keyRow0 + AttentionRows.KeyRow(s, j0 + c);
                    Copy(k, s.DType, storage, d, keys + c * stride, dp, width);
                    Copy(v, s.DType, storage, d, values + c * stride, dp, width);
                }
            for (int r = 0; r < rows; r++)
            {
                float* row = scores + (long)r * BK;
                Scores<TRows>(qt + (long)r * dp, keys, stride, dp, cols, row, lanes);
                HideInvisible(s, r % s.Queries, j0, cols, row);
                float newMax = MathF.Max(max[r], AttentionTiles<TLanes, TVector>.RowMax(row, BK));
                if (newMax == float.NegativeInfinity) continue;
                float correction = (float)Math.Pow(2, (double)max[r] - newMax);
                sum[r] = sum[r] * correction + AttentionTiles<TLanes, TVector>.Exponentiate(row, BK, newMax);
                max[r] = newMax;
                if (correction != 1) AttentionTiles<TLanes, TVector>.Scale(o + (long)r * dp, dp, correction);
                Accumulate<TRows>(row, values, stride, dp, cols, o + (long)r * dp);
            }
        }
        if (TRows.Interleaved)
            for (int r = 0; r < rows; r++) Reorder(o + (long)r * dp, dp, toPairs: false);
        scratch.Reset();
    }

    /// <summary>
    /// Whether a block's rows are read where they are stored: side by side (no ring wrap inside the block), no padding to
    /// add, and a dtype the kernels read as it is.
    /// </summary>
    private static bool InPlace(in AttentionShape s, long row0, int cols, int dp) =>
        row0 + cols <= s.KeyRows && s.HeadDim == dp && s.DType != DType.Float16;

    /// <summary>
    /// Storage row <paramref name="row"/> copied to <paramref name="destination"/> in the form the kernels read (Float16
    /// widened to Float32, the others as stored), padded with zeros to <paramref name="padded"/> elements.
    /// </summary>
    private static void Copy(byte* source, DType dtype, long row, int d, byte* destination, int padded, SimdWidth width)
    {
        if (dtype == DType.Float16)
        {
            AttentionRows.Widen(source, dtype, row, d, (float*)destination, padded, width);
            return;
        }
        int size = dtype.SizeOf();
        Buffer.MemoryCopy(source + row * d * size, destination, (long)d * size, (long)d * size);
        NativeMemory.Clear(destination + (long)d * size, (nuint)((padded - d) * size));
    }

    /// <summary>
    /// <c>row[c] = q · K_c</c> for c &lt; cols (q in the rows' element order): one vector of products per key, four keys at a
    /// time (eight FMA chains, q's vectors loaded once for the four), the Count keys of a group summed across lanes together.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores<TRows>(float* q, byte* keys, long stride, int dp, int cols, float* row, float* lanes) where TRows : IRows
    {
        int w = TLanes.Count;
        for (int c0 = 0; c0 < cols; c0 += w)
        {
            int n = Math.Min(w, cols - c0);
            int k = 0;
            for (; k + 4 <= n; k += 4)
            {
                byte* k0 = keys + (c0 + k) * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
                TVector e0 = TLanes.Splat(0f), o0 = TLanes.Splat(0f), e1 = TLanes.Splat(0f), o1 = TLanes.Splat(0f);
                TVector e2 = TLanes.Splat(0f), o2 = TLanes.Splat(0f), e3 = TLanes.Splat(0f), o3 = TLanes.Splat(0f);
                for (int e = 0; e < dp; e += 2 * w)
                {
                    TVector qEven = TLanes.Load(q + e), qOdd = TLanes.Load(q + e + w);
                    TRows.Load(k0, e, out TVector low, out TVector high);
                    e0 = TLanes.Fma(qEven, low, e0);
                    o0 = TLanes.Fma(qOdd, high, o0);
                    TRows.Load(k1, e, out low, out high);
                    e1 = TLanes.Fma(qEven, low, e1);
                    o1 = TLanes.Fma(qOdd, high, o1);
                    TRows.Load(k2, e, out low, out high);
                    e2 = TLanes.Fma(qEven, low, e2);
                    o2 = TLanes.Fma(qOdd, high, o2);
                    TRows.Load(k3, e, out low, out high);
                    e3 = TLanes.Fma(qEven, low, e3);
                    o3 = TLanes.Fma(qOdd, high, o3);
                }
                TLanes.Store(TLanes.Add(e0, o0), lanes + k * w);
                TLanes.Store(TLanes.Add(e1, o1), lanes + (k + 1) * w);
                TLanes.Store(TLanes.Add(e2, o2), lanes + (k + 2) * w);
                TLanes.Store(TLanes.Add(e3, o3), lanes + (k + 3) * w);
            }
            for (; k < n; k++)
            {
                byte* key = keys + (c0 + k) * stride;
                TVector even = TLanes.Splat(0f), odd = TLanes.Splat(0f);
                for (int e = 0; e < dp; e += 2 * w)
                {
                    TRows.Load(key, e, out TVector low, out TVector high);
                    even = TLanes.Fma(TLanes.Load(q + e), low, even);
                    odd = TLanes.Fma(TLanes.Load(q + e + w), high, odd);
                }
                TLanes.Store(TLanes.Add(even, odd), lanes + k * w);
            }
            // Past the block's last key (its final group only): zeros, which HideInvisible then sets to -inf.
            for (; k < w; k++) TLanes.Store(TLanes.Splat(0f), lanes + k * w);
            TLanes.Store(TLanes.SumEach(lanes), row + c0);
        }
    }

    /// <summary>
    /// <c>o += Σ_c p[c] V_c</c> over c &lt; cols: up to four vector pairs of o held in registers while the keys' rows are
    /// read in order (each row's bytes side by side, as the hardware prefetcher streams them), wider rows in such slices.
    /// </summary>
    private static void Accumulate<TRows>(float* p, byte* values, long stride, int dp, int cols, float* o) where TRows : IRows
    {
        int pair = 2 * TLanes.Count, e = 0;
        for (; e + 4 * pair <= dp; e += 4 * pair) Accumulate4<TRows>(p, values, stride, e, cols, o);
        for (; e + 2 * pair <= dp; e += 2 * pair) Accumulate2<TRows>(p, values, stride, e, cols, o);
        for (; e < dp; e += pair) Accumulate1<TRows>(p, values, stride, e, cols, o);
    }

    /// <summary>Elements [e, e + 8 Count) of o: eight FMA chains.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate4<TRows>(float* p, byte* values, long stride, int e, int cols, float* o) where TRows : IRows
    {
        int w = TLanes.Count;
        float* at = o + e;
        TVector a0 = TLanes.Load(at), a1 = TLanes.Load(at + w), a2 = TLanes.Load(at + 2 * w), a3 = TLanes.Load(at + 3 * w),
            a4 = TLanes.Load(at + 4 * w), a5 = TLanes.Load(at + 5 * w), a6 = TLanes.Load(at + 6 * w), a7 = TLanes.Load(at + 7 * w);
        for (int c = 0; c < cols; c++)
        {
            byte* row = values + c * stride;
            TVector weight = TLanes.Splat(p[c]);
            TRows.Load(row, e, out TVector x, out TVector y);
            a0 = TLanes.Fma(weight, x, a0);
            a1 = TLanes.Fma(weight, y, a1);
            TRows.Load(row, e + 2 * w, out x, out y);
            a2 = TLanes.Fma(weight, x, a2);
            a3 = TLanes.Fma(weight, y, a3);
            TRows.Load(row, e + 4 * w, out x, out y);
            a4 = TLanes.Fma(weight, x, a4);
            a5 = TLanes.Fma(weight, y, a5);
            TRows.Load(row, e + 6 * w, out x, out y);
            a6 = TLanes.Fma(weight, x, a6);
            a7 = TLanes.Fma(weight, y, a7);
        }
        TLanes.Store(a0, at); TLanes.Store(a1, at + w); TLanes.Store(a2, at + 2 * w); TLanes.Store(a3, at + 3 * w);
        TLanes.Store(a4, at + 4 * w); TLanes.Store(a5, at + 5 * w); TLanes.Store(a6, at + 6 * w); TLanes.Store(a7, at + 7 * w);
    }

    /// <summary>Elements [e, e + 4 Count) of o: even and odd keys in separate accumulators (eight FMA chains), added at the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate2<TRows>(float* p, byte* values, long stride, int e, int cols, float* o) where TRows : IRows
    {
        int w = TLanes.Count, c = 0;
        float* at = o + e;
        TVector a0 = TLanes.Load(at), a1 = TLanes.Load(at + w), a2 = TLanes.Load(at + 2 * w), a3 = TLanes.Load(at + 3 * w);
        TVector b0 = TLanes.Splat(0f), b1 = TLanes.Splat(0f), b2 = TLanes.Splat(0f), b3 = TLanes.Splat(0f);
        for (; c + 2 <= cols; c += 2)
        {
            byte* row = values + c * stride;
            TVector weight = TLanes.Splat(p[c]);
            TRows.Load(row, e, out TVector x, out TVector y);
            a0 = TLanes.Fma(weight, x, a0);
            a1 = TLanes.Fma(weight, y, a1);
            TRows.Load(row, e + 2 * w, out x, out y);
            a2 = TLanes.Fma(weight, x, a2);
            a3 = TLanes.Fma(weight, y, a3);
            row += stride;
            weight = TLanes.Splat(p[c + 1]);
            TRows.Load(row, e, out x, out y);
            b0 = TLanes.Fma(weight, x, b0);
            b1 = TLanes.Fma(weight, y, b1);
            TRows.Load(row, e + 2 * w, out x, out y);
            b2 = TLanes.Fma(weight, x, b2);
            b3 = TLanes.Fma(weight, y, b3);
        }
        if (c < cols)
        {
            byte* row = values + c * stride;
            TVector weight = TLanes.Splat(p[c]);
            TRows.Load(row, e, out TVector x, out TVector y);
            a0 = TLanes.Fma(weight, x, a0);
            a1 = TLanes.Fma(weight, y, a1);
            TRows.Load(row, e + 2 * w, out x, out y);
            a2 = TLanes.Fma(weight, x, a2);
            a3 = TLanes.Fma(weight, y, a3);
        }
        TLanes.Store(TLanes.Add(a0, b0), at); TLanes.Store(TLanes.Add(a1, b1), at + w);
        TLanes.Store(TLanes.Add(a2, b2), at + 2 * w); TLanes.Store(TLanes.Add(a3, b3), at + 3 * w);
    }

    /// <summary>Elements [e, e + 2 Count) of o: even and odd keys in separate accumulators (four FMA chains), added at the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate1<TRows>(float* p, byte* values, long stride, int e, int cols, float* o) where TRows : IRows
    {
        int w = TLanes.Count, c = 0;
        TVector low0 = TLanes.Load(o + e), high0 = TLanes.Load(o + e + w), low1 = TLanes.Splat(0f), high1 = TLanes.Splat(0f);
        for (; c + 2 <= cols; c += 2)
        {
            TRows.Load(values + c * stride, e, out TVector low, out TVector high);
            TVector weight = TLanes.Splat(p[c]);
            low0 = TLanes.Fma(weight, low, low0);
            high0 = TLanes.Fma(weight, high, high0);
            TRows.Load(values + (c + 1) * stride, e, out low, out high);
            weight = TLanes.Splat(p[c + 1]);
            low1 = TLanes.Fma(weight, low, low1);
            high1 = TLanes.Fma(weight, high, high1);
        }
        if (c < cols)
        {
            TRows.Load(values + c * stride, e, out TVector low, out TVector high);
            TVector weight = TLanes.Splat(p[c]);
            low0 = TLanes.Fma(weight, low, low0);
            high0 = TLanes.Fma(weight, high, high0);
        }
        TLanes.Store(TLanes.Add(low0, low1), o + e);
        TLanes.Store(TLanes.Add(high0, high1), o + e + w);
    }

    /// <summary>
    /// A row of <paramref name="dp"/> floats between element order and the interleaved order of <see cref="BFloat16Pairs"/>:
    /// in each group of 2 Count elements, position t &lt; Count holds element 2t and position Count + t element 2t + 1.
    /// </summary>
    private static void Reorder(float* row, int dp, bool toPairs)
    {
        int w = TLanes.Count;
        float* copy = stackalloc float[2 * w];
        for (int g = 0; g < dp; g += 2 * w)
        {
            Buffer.MemoryCopy(row + g, copy, 8L * w, 8L * w);
            for (int t = 0; t < w; t++)
            {
                if (toPairs) (row[g + t], row[g + w + t]) = (copy[2 * t], copy[2 * t + 1]);
                else (row[g + 2 * t], row[g + 2 * t + 1]) = (copy[t], copy[w + t]);
            }
        }
    }

    /// <summary>Sets the scores of keys query i does not see, and the padding past <paramref name="cols"/>, to -inf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
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
