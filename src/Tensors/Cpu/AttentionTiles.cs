using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NativeTensor.Runtime;

namespace NativeTensor.Cpu;

/// <summary>
/// The tile routines of the CPU attention kernels, written once over <see cref="IFloatLanes{TVector}"/>: one small GEMM
/// micro-kernel (every product of the forward and backward is <c>C (+)= A B</c> on packed row-major tiles), a vector
/// exp2, and the packing that widens a tile of q, k, v or dO to Float32 with its head dimension padded by zeros to a
/// whole number of vectors.
/// </summary>
internal static unsafe class AttentionTiles<TLanes, TVector> where TLanes : IFloatLanes<TVector> where TVector : struct
{
    /// <summary>Taylor coefficients of 2^f = Σ (f ln 2)^k / k!, k = 0..7: on |f| &lt;= 1/2 the truncation is below 6e-9, a tenth of an ulp.</summary>
    private static readonly float C1 = (float)Math.Log(2), C2 = (float)(Math.Pow(Math.Log(2), 2) / 2), C3 = (float)(Math.Pow(Math.Log(2), 3) / 6),
        C4 = (float)(Math.Pow(Math.Log(2), 4) / 24), C5 = (float)(Math.Pow(Math.Log(2), 5) / 120), C6 = (float)(Math.Pow(Math.Log(2), 6) / 720),
        C7 = (float)(Math.Pow(Math.Log(2), 7) / 5040);

    /// <summary>
    /// 2^x lane by lane, within about 2 ulp, subnormal results included: x = n + f with n the nearest integer, 2^f by
    /// Horner's rule, then 2^(n + 64) formed in the exponent field and multiplied by 2^-64, which rounds a result below
    /// 2^-126 correctly into the subnormals. x is clamped to [-151, 63]: below, the result is +0 (as 2^x rounds); above,
    /// 2^63.5 at most (the kernels' arguments are at most a rounding above 0). -inf gives +0 and NaN stays NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVector Exp2(TVector x)
    {
        TVector clamped = TLanes.ClampNative(x, TLanes.Splat(-151f), TLanes.Splat(63f));
        TVector n = TLanes.Round(clamped);
        TVector f = TLanes.Subtract(clamped, n);
        TVector p = TLanes.Fma(TLanes.Splat(C7), f, TLanes.Splat(C6));
        p = TLanes.Fma(p, f, TLanes.Splat(C5));
        p = TLanes.Fma(p, f, TLanes.Splat(C4));
        p = TLanes.Fma(p, f, TLanes.Splat(C3));
        p = TLanes.Fma(p, f, TLanes.Splat(C2));
        p = TLanes.Fma(p, f, TLanes.Splat(C1));
        p = TLanes.Fma(p, f, TLanes.Splat(1f));
        TVector result = TLanes.Multiply(TLanes.ScaleByPowerOfTwo(p, TLanes.Add(n, TLanes.Splat(64f))), TLanes.Splat(TwoToMinus64));
        return TLanes.SelectNaN(x, x, result);
    }

    private static readonly float TwoToMinus64 = MathF.ScaleB(1f, -64);

    /// <summary>
    /// <c>C[r, :cols] = (accumulate ? C[r, :cols] : 0) + Σ_p A[r, p] B[p, :cols]</c> for r &lt; rows, p &lt; inner; all three
    /// row-major with the given strides (in floats); cols a multiple of the lane count. Each element is one chain of FMAs
    /// over p in order. Register blocks of 6 rows by 2 vectors: 12 accumulators hide the FMA latency (two pipes of four to
    /// five cycles need ten chains in flight) and per step 2 loads of B and 6 broadcasts of A feed 12 FMAs, in the 16
    /// registers of AVX2; 4-row and 1-row blocks take the tails.
    /// </summary>
    public static void Product(float* a, int lda, float* b, int ldb, float* c, int ldc, int rows, int inner, int cols, bool accumulate)
    {
        int w = TLanes.Count, r = 0;
        for (; r + 6 <= rows; r += 6)
        {
            int col = 0;
            for (; col + 2 * w <= cols; col += 2 * w) Block6x2(a + (long)r * lda, lda, b + col, ldb, c + (long)r * ldc + col, ldc, inner, accumulate);
            for (; col < cols; col += w) Block1(a + (long)r * lda, lda, b + col, ldb, c + (long)r * ldc + col, ldc, inner, accumulate, 6);
        }
        for (; r + 4 <= rows; r += 4)
        {
            int col = 0;
            for (; col + 2 * w <= cols; col += 2 * w) Block4x2(a + (long)r * lda, lda, b + col, ldb, c + (long)r * ldc + col, ldc, inner, accumulate);
            for (; col < cols; col += w) Block1(a + (long)r * lda, lda, b + col, ldb, c + (long)r * ldc + col, ldc, inner, accumulate, 4);
        }
        for (; r < rows; r++)
        {
            // A single row is a chain of FMAs per vector: eight (or four) vectors side by side keep that many chains in flight.
            int col = 0;
            for (; col + 8 * w <= cols; col += 8 * w) Row1x8(a + (long)r * lda, b + col, ldb, c + (long)r * ldc + col, inner, accumulate);
            for (; col + 4 * w <= cols; col += 4 * w) Row1x4(a + (long)r * lda, b + col, ldb, c + (long)r * ldc + col, inner, accumulate);
            for (; col < cols; col += w) Block1(a + (long)r * lda, lda, b + col, ldb, c + (long)r * ldc + col, ldc, inner, accumulate, 1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row1x8(float* a, float* b, int ldb, float* c, int inner, bool accumulate)
    {
        int w = TLanes.Count;
        TVector c0, c1, c2, c3, c4, c5, c6, c7;
        if (accumulate)
        {
            c0 = TLanes.Load(c); c1 = TLanes.Load(c + w); c2 = TLanes.Load(c + 2 * w); c3 = TLanes.Load(c + 3 * w);
            c4 = TLanes.Load(c + 4 * w); c5 = TLanes.Load(c + 5 * w); c6 = TLanes.Load(c + 6 * w); c7 = TLanes.Load(c + 7 * w);
        }
        else c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = TLanes.Splat(0f);
        for (int p = 0; p < inner; p++)
        {
            float* row = b + (long)p * ldb;
            TVector x = TLanes.Splat(a[p]);
            c0 = TLanes.Fma(x, TLanes.Load(row), c0); c1 = TLanes.Fma(x, TLanes.Load(row + w), c1);
            c2 = TLanes.Fma(x, TLanes.Load(row + 2 * w), c2); c3 = TLanes.Fma(x, TLanes.Load(row + 3 * w), c3);
            c4 = TLanes.Fma(x, TLanes.Load(row + 4 * w), c4); c5 = TLanes.Fma(x, TLanes.Load(row + 5 * w), c5);
            c6 = TLanes.Fma(x, TLanes.Load(row + 6 * w), c6); c7 = TLanes.Fma(x, TLanes.Load(row + 7 * w), c7);
        }
        TLanes.Store(c0, c); TLanes.Store(c1, c + w); TLanes.Store(c2, c + 2 * w); TLanes.Store(c3, c + 3 * w);
        TLanes.Store(c4, c + 4 * w); TLanes.Store(c5, c + 5 * w); TLanes.Store(c6, c + 6 * w); TLanes.Store(c7, c + 7 * w);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row1x4(float* a, float* b, int ldb, float* c, int inner, bool accumulate)
    {
        int w = TLanes.Count;
        TVector c0, c1, c2, c3;
        if (accumulate)
        {
            c0 = TLanes.Load(c); c1 = TLanes.Load(c + w); c2 = TLanes.Load(c + 2 * w); c3 = TLanes.Load(c + 3 * w);
        }
        else c0 = c1 = c2 = c3 = TLanes.Splat(0f);
        for (int p = 0; p < inner; p++)
        {
            float* row = b + (long)p * ldb;
            TVector x = TLanes.Splat(a[p]);
            c0 = TLanes.Fma(x, TLanes.Load(row), c0); c1 = TLanes.Fma(x, TLanes.Load(row + w), c1);
            c2 = TLanes.Fma(x, TLanes.Load(row + 2 * w), c2); c3 = TLanes.Fma(x, TLanes.Load(row + 3 * w), c3);
        }
        TLanes.Store(c0, c); TLanes.Store(c1, c + w); TLanes.Store(c2, c + 2 * w); TLanes.Store(c3, c + 3 * w);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block6x2(float* a, int lda, float* b, int ldb, float* c, int ldc, int inner, bool accumulate)
    {
        int w = TLanes.Count;
        float* a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda;
        TVector c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (accumulate)
        {
            c00 = TLanes.Load(c); c01 = TLanes.Load(c + w);
            c10 = TLanes.Load(c + ldc); c11 = TLanes.Load(c + ldc + w);
            c20 = TLanes.Load(c + 2 * ldc); c21 = TLanes.Load(c + 2 * ldc + w);
            c30 = TLanes.Load(c + 3 * ldc); c31 = TLanes.Load(c + 3 * ldc + w);
            c40 = TLanes.Load(c + 4 * ldc); c41 = TLanes.Load(c + 4 * ldc + w);
            c50 = TLanes.Load(c + 5 * ldc); c51 = TLanes.Load(c + 5 * ldc + w);
        }
        else c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = TLanes.Splat(0f);
        for (int p = 0; p < inner; p++)
        {
            float* row = b + (long)p * ldb;
            TVector b0 = TLanes.Load(row), b1 = TLanes.Load(row + w);
            TVector x = TLanes.Splat(a0[p]);
            c00 = TLanes.Fma(x, b0, c00); c01 = TLanes.Fma(x, b1, c01);
            x = TLanes.Splat(a1[p]);
            c10 = TLanes.Fma(x, b0, c10); c11 = TLanes.Fma(x, b1, c11);
            x = TLanes.Splat(a2[p]);
            c20 = TLanes.Fma(x, b0, c20); c21 = TLanes.Fma(x, b1, c21);
            x = TLanes.Splat(a3[p]);
            c30 = TLanes.Fma(x, b0, c30); c31 = TLanes.Fma(x, b1, c31);
            x = TLanes.Splat(a4[p]);
            c40 = TLanes.Fma(x, b0, c40); c41 = TLanes.Fma(x, b1, c41);
            x = TLanes.Splat(a5[p]);
            c50 = TLanes.Fma(x, b0, c50); c51 = TLanes.Fma(x, b1, c51);
        }
        TLanes.Store(c00, c); TLanes.Store(c01, c + w);
        TLanes.Store(c10, c + ldc); TLanes.Store(c11, c + ldc + w);
        TLanes.Store(c20, c + 2 * ldc); TLanes.Store(c21, c + 2 * ldc + w);
        TLanes.Store(c30, c + 3 * ldc); TLanes.Store(c31, c + 3 * ldc + w);
        TLanes.Store(c40, c + 4 * ldc); TLanes.Store(c41, c + 4 * ldc + w);
        TLanes.Store(c50, c + 5 * ldc); TLanes.Store(c51, c + 5 * ldc + w);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x2(float* a, int lda, float* b, int ldb, float* c, int ldc, int inner, bool accumulate)
    {
        int w = TLanes.Count;
        float* a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda;
        TVector c00, c01, c10, c11, c20, c21, c30, c31;
        if (accumulate)
        {
            c00 = TLanes.Load(c); c01 = TLanes.Load(c + w);
            c10 = TLanes.Load(c + ldc); c11 = TLanes.Load(c + ldc + w);
            c20 = TLanes.Load(c + 2 * ldc); c21 = TLanes.Load(c + 2 * ldc + w);
            c30 = TLanes.Load(c + 3 * ldc); c31 = TLanes.Load(c + 3 * ldc + w);
        }
        else c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = TLanes.Splat(0f);
        for (int p = 0; p < inner; p++)
        {
            float* row = b + (long)p * ldb;
            TVector b0 = TLanes.Load(row), b1 = TLanes.Load(row + w);
            TVector x = TLanes.Splat(a0[p]);
            c00 = TLanes.Fma(x, b0, c00); c01 = TLanes.Fma(x, b1, c01);
            x = TLanes.Splat(a1[p]);
            c10 = TLanes.Fma(x, b0, c10); c11 = TLanes.Fma(x, b1, c11);
            x = TLanes.Splat(a2[p]);
            c20 = TLanes.Fma(x, b0, c20); c21 = TLanes.Fma(x, b1, c21);
            x = TLanes.Splat(a3[p]);
            c30 = TLanes.Fma(x, b0, c30); c31 = TLanes.Fma(x, b1, c31);
        }
        TLanes.Store(c00, c); TLanes.Store(c01, c + w);
        TLanes.Store(c10, c + ldc); TLanes.Store(c11, c + ldc + w);
        TLanes.Store(c20, c + 2 * ldc); TLanes.Store(c21, c + 2 * ldc + w);
        TLanes.Store(c30, c + 3 * ldc); TLanes.Store(c31, c + 3 * ldc + w);
    }

    /// <summary>One vector column of <paramref name="rows"/> rows (the tails of <see cref="Product"/>).</summary>
    private static void Block1(float* a, int lda, float* b, int ldb, float* c, int ldc, int inner, bool accumulate, int rows)
    {
        for (int r = 0; r < rows; r++)
        {
            float* ar = a + (long)r * lda;
            TVector sum = accumulate ? TLanes.Load(c + (long)r * ldc) : TLanes.Splat(0f);
            for (int p = 0; p < inner; p++) sum = TLanes.Fma(TLanes.Splat(ar[p]), TLanes.Load(b + (long)p * ldb), sum);
            TLanes.Store(sum, c + (long)r * ldc);
        }
    }

    /// <summary><c>row[0 .. count) *= factor</c>, count a multiple of the lane count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scale(float* row, int count, float factor)
    {
        TVector f = TLanes.Splat(factor);
        for (int d = 0; d < count; d += TLanes.Count) TLanes.Store(TLanes.Multiply(TLanes.Load(row + d), f), row + d);
    }

    /// <summary>The largest element of a row of <paramref name="count"/> floats (a multiple of the lane count), NaN if any is NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float RowMax(float* row, int count)
    {
        TVector m = TLanes.Load(row);
        for (int c = TLanes.Count; c < count; c += TLanes.Count) m = TLanes.Max(m, TLanes.Load(row + c));
        return TLanes.MaxAcross(m);
    }

    /// <summary>
    /// <c>row[c] = 2^(row[c] - shift)</c> in place over <paramref name="count"/> floats (a multiple of the lane count);
    /// returns their sum, accumulated lane-wise in order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Exponentiate(float* row, int count, float shift)
    {
        TVector s = TLanes.Splat(shift), sum = TLanes.Splat(0f);
        for (int c = 0; c < count; c += TLanes.Count)
        {
            TVector e = Exp2(TLanes.Subtract(TLanes.Load(row + c), s));
            TLanes.Store(e, row + c);
            sum = TLanes.Add(sum, e);
        }
        return TLanes.SumAcross(sum);
    }

    /// <summary><c>ds[c] = p[c] * (dp[c] - delta)</c> over <paramref name="count"/> floats (a multiple of the lane count).</summary>
    public static void ScoreGradient(float* p, float* dp, float* ds, int count, float delta)
    {
        TVector d = TLanes.Splat(delta);
        for (int c = 0; c < count; c += TLanes.Count)
            TLanes.Store(TLanes.Multiply(TLanes.Load(p + c), TLanes.Subtract(TLanes.Load(dp + c), d)), ds + c);
    }

    /// <summary>Σ_c x[c] y[c] over <paramref name="count"/> floats (a multiple of the lane count): lane-wise FMAs in two chains, then one sum.</summary>
    public static float Dot(float* x, float* y, int count)
    {
        // Two chains: each FMA waits on the one before it in its chain only.
        TVector even = TLanes.Splat(0f), odd = TLanes.Splat(0f);
        int w = TLanes.Count, c = 0;
        for (; c + 2 * w <= count; c += 2 * w)
        {
            even = TLanes.Fma(TLanes.Load(x + c), TLanes.Load(y + c), even);
            odd = TLanes.Fma(TLanes.Load(x + c + w), TLanes.Load(y + c + w), odd);
        }
        if (c < count) even = TLanes.Fma(TLanes.Load(x + c), TLanes.Load(y + c), even);
        return TLanes.SumAcross(TLanes.Add(even, odd));
    }

    /// <summary><c>destination[d] += source[d]</c> for d &lt; count (any count).</summary>
    public static void AddInto(float* destination, float* source, int count)
    {
        int d = 0;
        for (; d + TLanes.Count <= count; d += TLanes.Count)
            TLanes.Store(TLanes.Add(TLanes.Load(destination + d), TLanes.Load(source + d)), destination + d);
        for (; d < count; d++) destination[d] += source[d];
    }
}

/// <summary>Widening and narrowing of attention rows: a row of D elements of the call's dtype to and from Float32.</summary>
internal static unsafe class AttentionRows
{
    /// <summary>
    /// Row <paramref name="row"/> of <paramref name="source"/> (rows of D elements of <paramref name="dtype"/>) as D floats
    /// in <paramref name="destination"/>, followed by zeros up to <paramref name="padded"/>.
    /// </summary>
    public static void Widen(byte* source, DType dtype, long row, int d, float* destination, int padded, SimdWidth width)
    {
        byte* from = source + row * d * dtype.SizeOf();
        if (dtype == DType.Float32) Buffer.MemoryCopy(from, destination, (long)d * 4, (long)d * 4);
        else PrecisionKernels.ConvertSerial(from, dtype, (byte*)destination, DType.Float32, d, width);
        if (padded > d) NativeMemory.Clear(destination + d, (nuint)((padded - d) * 4));
    }

    /// <summary>D floats stored as row <paramref name="row"/> of <paramref name="destination"/> in <paramref name="dtype"/>, rounded to nearest even.</summary>
    public static void Narrow(float* source, byte* destination, DType dtype, long row, int d, SimdWidth width)
    {
        byte* to = destination + row * d * dtype.SizeOf();
        if (dtype == DType.Float32) Buffer.MemoryCopy(source, to, (long)d * 4, (long)d * 4);
        else PrecisionKernels.ConvertSerial((byte*)source, DType.Float32, to, dtype, d, width);
    }

    /// <summary>The storage row of key j: keys start at row KeyFirst of each head and wrap at KeyRows (a cache's ring).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long KeyRow(in AttentionShape shape, long j)
    {
        long row = shape.KeyFirst + j;
        return row >= shape.KeyRows ? row - shape.KeyRows : row;
    }
}
