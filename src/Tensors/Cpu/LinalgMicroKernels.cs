using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>
/// One register-blocked micro-kernel of the GEMM: <c>tile[r, j] = Σ_p a[p, r] * b[p, j]</c> over one depth block,
/// from a packed A micro-panel (<see cref="Rows"/> values per depth step, zero-padded) and a packed B micro-panel
/// (<see cref="Columns"/> values per step), with every element of the tile held in a register for the whole block.
/// Then <see cref="WriteBack"/> puts the tile into C with alpha and beta. The blocking constants travel with the
/// kernel because they follow from its register tile and the caches it was tuned on.
/// </summary>
internal unsafe interface IMicroKernel
{
    /// <summary>MR: rows of C per tile, one broadcast of A each.</summary>
    static abstract int Rows { get; }
    /// <summary>NR: columns of C per tile, a whole number of vectors of B.</summary>
    static abstract int Columns { get; }
    /// <summary>KC: the depth block; a packed B block of <see cref="Depth"/> x <see cref="Width"/> stays in L2.</summary>
    static abstract int Depth { get; }
    /// <summary>NC: columns of C per packed B block.</summary>
    static abstract int Width { get; }
    /// <summary>The vectors the packing may use, the kernel's own width.</summary>
    static abstract SimdWidth Simd { get; }
    /// <summary>The kc-step product of one A and one B micro-panel into the row-major <c>Rows x Columns</c> tile.</summary>
    static abstract void Multiply(float* a, float* b, int kc, float* tile);
    /// <summary>
    /// <c>c[r, j] = alpha * tile[r, j] + beta * c[r, j]</c> for r &lt; <paramref name="rows"/>, j &lt;
    /// <paramref name="columns"/>, as one fused multiply-add (<c>fma(alpha, tile, beta * c)</c>); with beta 0 c is not
    /// read. Nothing outside the rows x columns corner is touched.
    /// </summary>
    static abstract void WriteBack(float* tile, float* c, long ldc, int rows, int columns, float alpha, float beta);
}

/// <summary>
/// AVX-512: 14 x 32, i.e. 28 Vector512 accumulators, two vectors of B and one broadcast of A live per step: 31 of
/// the 32 zmm registers. Each step issues 28 FMAs against 2 loads and 14 broadcasts, so the FMA ports, not the
/// loads, are the limit (Zen 4 issues one 512-bit FMA per cycle per core; measured in L1 at ~113 GFLOP/s per core).
/// </summary>
internal readonly unsafe struct MicroKernel512 : IMicroKernel
{
    public static int Rows => 14;
    public static int Columns => 32;
    public static int Depth => 256;
    public static int Width => 512;
    public static SimdWidth Simd => SimdWidth.V512;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(float* a, float* b, int kc, float* tile)
    {
        Vector512<float> c0_0 = default, c0_1 = default;
        Vector512<float> c1_0 = default, c1_1 = default;
        Vector512<float> c2_0 = default, c2_1 = default;
        Vector512<float> c3_0 = default, c3_1 = default;
        Vector512<float> c4_0 = default, c4_1 = default;
        Vector512<float> c5_0 = default, c5_1 = default;
        Vector512<float> c6_0 = default, c6_1 = default;
        Vector512<float> c7_0 = default, c7_1 = default;
        Vector512<float> c8_0 = default, c8_1 = default;
        Vector512<float> c9_0 = default, c9_1 = default;
        Vector512<float> c10_0 = default, c10_1 = default;
        Vector512<float> c11_0 = default, c11_1 = default;
        Vector512<float> c12_0 = default, c12_1 = default;
        Vector512<float> c13_0 = default, c13_1 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector512<float> b0 = Vector512.Load(b + 0); Vector512<float> b1 = Vector512.Load(b + 16);
            Vector512<float> a0 = Vector512.Create(a[0]);
            c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0); c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
            Vector512<float> a1 = Vector512.Create(a[1]);
            c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0); c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
            Vector512<float> a2 = Vector512.Create(a[2]);
            c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0); c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
            Vector512<float> a3 = Vector512.Create(a[3]);
            c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0); c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
            Vector512<float> a4 = Vector512.Create(a[4]);
            c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0); c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
            Vector512<float> a5 = Vector512.Create(a[5]);
            c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0); c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
            Vector512<float> a6 = Vector512.Create(a[6]);
            c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0); c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
            Vector512<float> a7 = Vector512.Create(a[7]);
            c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0); c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
            Vector512<float> a8 = Vector512.Create(a[8]);
            c8_0 = Vector512.FusedMultiplyAdd(a8, b0, c8_0); c8_1 = Vector512.FusedMultiplyAdd(a8, b1, c8_1);
            Vector512<float> a9 = Vector512.Create(a[9]);
            c9_0 = Vector512.FusedMultiplyAdd(a9, b0, c9_0); c9_1 = Vector512.FusedMultiplyAdd(a9, b1, c9_1);
            Vector512<float> a10 = Vector512.Create(a[10]);
            c10_0 = Vector512.FusedMultiplyAdd(a10, b0, c10_0); c10_1 = Vector512.FusedMultiplyAdd(a10, b1, c10_1);
            Vector512<float> a11 = Vector512.Create(a[11]);
            c11_0 = Vector512.FusedMultiplyAdd(a11, b0, c11_0); c11_1 = Vector512.FusedMultiplyAdd(a11, b1, c11_1);
            Vector512<float> a12 = Vector512.Create(a[12]);
            c12_0 = Vector512.FusedMultiplyAdd(a12, b0, c12_0); c12_1 = Vector512.FusedMultiplyAdd(a12, b1, c12_1);
            Vector512<float> a13 = Vector512.Create(a[13]);
            c13_0 = Vector512.FusedMultiplyAdd(a13, b0, c13_0); c13_1 = Vector512.FusedMultiplyAdd(a13, b1, c13_1);
            a += 14;
            b += 32;
        }
        c0_0.Store(tile + 0); c0_1.Store(tile + 16);
        c1_0.Store(tile + 32); c1_1.Store(tile + 48);
        c2_0.Store(tile + 64); c2_1.Store(tile + 80);
        c3_0.Store(tile + 96); c3_1.Store(tile + 112);
        c4_0.Store(tile + 128); c4_1.Store(tile + 144);
        c5_0.Store(tile + 160); c5_1.Store(tile + 176);
        c6_0.Store(tile + 192); c6_1.Store(tile + 208);
        c7_0.Store(tile + 224); c7_1.Store(tile + 240);
        c8_0.Store(tile + 256); c8_1.Store(tile + 272);
        c9_0.Store(tile + 288); c9_1.Store(tile + 304);
        c10_0.Store(tile + 320); c10_1.Store(tile + 336);
        c11_0.Store(tile + 352); c11_1.Store(tile + 368);
        c12_0.Store(tile + 384); c12_1.Store(tile + 400);
        c13_0.Store(tile + 416); c13_1.Store(tile + 432);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WriteBack(float* tile, float* c, long ldc, int rows, int columns, float alpha, float beta)
    {
        if (columns < 32)
        {
            MicroKernels.WriteBackScalar(tile, 32, c, ldc, rows, columns, alpha, beta);
            return;
        }
        Vector512<float> scale = Vector512.Create(alpha), keep = Vector512.Create(beta);
        for (int r = 0; r < rows; r++, tile += 32, c += ldc)
        {
            Vector512<float> t0 = Vector512.Load(tile), t1 = Vector512.Load(tile + 16);
            if (beta == 0)
            {
                (scale * t0).Store(c);
                (scale * t1).Store(c + 16);
            }
            else
            {
                Vector512.FusedMultiplyAdd(scale, t0, keep * Vector512.Load(c)).Store(c);
                Vector512.FusedMultiplyAdd(scale, t1, keep * Vector512.Load(c + 16)).Store(c + 16);
            }
        }
    }
}

/// <summary>
/// AVX2: 6 x 16, twelve Vector256 accumulators, two of B and one broadcast: 15 of the 16 ymm registers an AVX2
/// machine has (the classic Haswell shape). MultiplyAddEstimate is one FMA where the hardware has FMA3.
/// </summary>
internal readonly unsafe struct MicroKernel256 : IMicroKernel
{
    public static int Rows => 6;
    public static int Columns => 16;
    public static int Depth => 256;
    public static int Width => 512;
    public static SimdWidth Simd => SimdWidth.V256;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(float* a, float* b, int kc, float* tile)
    {
        Vector256<float> c0_0 = default, c0_1 = default;
        Vector256<float> c1_0 = default, c1_1 = default;
        Vector256<float> c2_0 = default, c2_1 = default;
        Vector256<float> c3_0 = default, c3_1 = default;
        Vector256<float> c4_0 = default, c4_1 = default;
        Vector256<float> c5_0 = default, c5_1 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector256<float> b0 = Vector256.Load(b + 0); Vector256<float> b1 = Vector256.Load(b + 8);
            Vector256<float> a0 = Vector256.Create(a[0]);
            c0_0 = Vector256.MultiplyAddEstimate(a0, b0, c0_0); c0_1 = Vector256.MultiplyAddEstimate(a0, b1, c0_1);
            Vector256<float> a1 = Vector256.Create(a[1]);
            c1_0 = Vector256.MultiplyAddEstimate(a1, b0, c1_0); c1_1 = Vector256.MultiplyAddEstimate(a1, b1, c1_1);
            Vector256<float> a2 = Vector256.Create(a[2]);
            c2_0 = Vector256.MultiplyAddEstimate(a2, b0, c2_0); c2_1 = Vector256.MultiplyAddEstimate(a2, b1, c2_1);
            Vector256<float> a3 = Vector256.Create(a[3]);
            c3_0 = Vector256.MultiplyAddEstimate(a3, b0, c3_0); c3_1 = Vector256.MultiplyAddEstimate(a3, b1, c3_1);
            Vector256<float> a4 = Vector256.Create(a[4]);
            c4_0 = Vector256.MultiplyAddEstimate(a4, b0, c4_0); c4_1 = Vector256.MultiplyAddEstimate(a4, b1, c4_1);
            Vector256<float> a5 = Vector256.Create(a[5]);
            c5_0 = Vector256.MultiplyAddEstimate(a5, b0, c5_0); c5_1 = Vector256.MultiplyAddEstimate(a5, b1, c5_1);
            a += 6;
            b += 16;
        }
        c0_0.Store(tile + 0); c0_1.Store(tile + 8);
        c1_0.Store(tile + 16); c1_1.Store(tile + 24);
        c2_0.Store(tile + 32); c2_1.Store(tile + 40);
        c3_0.Store(tile + 48); c3_1.Store(tile + 56);
        c4_0.Store(tile + 64); c4_1.Store(tile + 72);
        c5_0.Store(tile + 80); c5_1.Store(tile + 88);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WriteBack(float* tile, float* c, long ldc, int rows, int columns, float alpha, float beta)
    {
        if (columns < 16)
        {
            MicroKernels.WriteBackScalar(tile, 16, c, ldc, rows, columns, alpha, beta);
            return;
        }
        Vector256<float> scale = Vector256.Create(alpha), keep = Vector256.Create(beta);
        for (int r = 0; r < rows; r++, tile += 16, c += ldc)
        {
            Vector256<float> t0 = Vector256.Load(tile), t1 = Vector256.Load(tile + 8);
            if (beta == 0)
            {
                (scale * t0).Store(c);
                (scale * t1).Store(c + 8);
            }
            else
            {
                Vector256.FusedMultiplyAdd(scale, t0, keep * Vector256.Load(c)).Store(c);
                Vector256.FusedMultiplyAdd(scale, t1, keep * Vector256.Load(c + 8)).Store(c + 8);
            }
        }
    }
}

/// <summary>SSE / NEON: 6 x 8, twelve Vector128 accumulators, the same register budget as the AVX2 kernel.</summary>
internal readonly unsafe struct MicroKernel128 : IMicroKernel
{
    public static int Rows => 6;
    public static int Columns => 8;
    public static int Depth => 256;
    public static int Width => 256;
    public static SimdWidth Simd => SimdWidth.V128;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(float* a, float* b, int kc, float* tile)
    {
        Vector128<float> c0_0 = default, c0_1 = default;
        Vector128<float> c1_0 = default, c1_1 = default;
        Vector128<float> c2_0 = default, c2_1 = default;
        Vector128<float> c3_0 = default, c3_1 = default;
        Vector128<float> c4_0 = default, c4_1 = default;
        Vector128<float> c5_0 = default, c5_1 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector128<float> b0 = Vector128.Load(b + 0); Vector128<float> b1 = Vector128.Load(b + 4);
            Vector128<float> a0 = Vector128.Create(a[0]);
            c0_0 = Vector128.MultiplyAddEstimate(a0, b0, c0_0); c0_1 = Vector128.MultiplyAddEstimate(a0, b1, c0_1);
            Vector128<float> a1 = Vector128.Create(a[1]);
            c1_0 = Vector128.MultiplyAddEstimate(a1, b0, c1_0); c1_1 = Vector128.MultiplyAddEstimate(a1, b1, c1_1);
            Vector128<float> a2 = Vector128.Create(a[2]);
            c2_0 = Vector128.MultiplyAddEstimate(a2, b0, c2_0); c2_1 = Vector128.MultiplyAddEstimate(a2, b1, c2_1);
            Vector128<float> a3 = Vector128.Create(a[3]);
            c3_0 = Vector128.MultiplyAddEstimate(a3, b0, c3_0); c3_1 = Vector128.MultiplyAddEstimate(a3, b1, c3_1);
            Vector128<float> a4 = Vector128.Create(a[4]);
            c4_0 = Vector128.MultiplyAddEstimate(a4, b0, c4_0); c4_1 = Vector128.MultiplyAddEstimate(a4, b1, c4_1);
            Vector128<float> a5 = Vector128.Create(a[5]);
            c5_0 = Vector128.MultiplyAddEstimate(a5, b0, c5_0); c5_1 = Vector128.MultiplyAddEstimate(a5, b1, c5_1);
            a += 6;
            b += 8;
        }
        c0_0.Store(tile + 0); c0_1.Store(tile + 4);
        c1_0.Store(tile + 8); c1_1.Store(tile + 12);
        c2_0.Store(tile + 16); c2_1.Store(tile + 20);
        c3_0.Store(tile + 24); c3_1.Store(tile + 28);
        c4_0.Store(tile + 32); c4_1.Store(tile + 36);
        c5_0.Store(tile + 40); c5_1.Store(tile + 44);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WriteBack(float* tile, float* c, long ldc, int rows, int columns, float alpha, float beta)
    {
        if (columns < 8)
        {
            MicroKernels.WriteBackScalar(tile, 8, c, ldc, rows, columns, alpha, beta);
            return;
        }
        Vector128<float> scale = Vector128.Create(alpha), keep = Vector128.Create(beta);
        for (int r = 0; r < rows; r++, tile += 8, c += ldc)
        {
            Vector128<float> t0 = Vector128.Load(tile), t1 = Vector128.Load(tile + 4);
            if (beta == 0)
            {
                (scale * t0).Store(c);
                (scale * t1).Store(c + 4);
            }
            else
            {
                Vector128.FusedMultiplyAdd(scale, t0, keep * Vector128.Load(c)).Store(c);
                Vector128.FusedMultiplyAdd(scale, t1, keep * Vector128.Load(c + 4)).Store(c + 4);
            }
        }
    }
}

/// <summary>
/// No vectors: 4 x 4 scalar accumulators, a multiply and an add per term (no FMA is assumed on a machine without
/// vectors; the error bound counts the same k roundings per term either way).
/// </summary>
internal readonly unsafe struct MicroKernelScalar : IMicroKernel
{
    public static int Rows => 4;
    public static int Columns => 4;
    public static int Depth => 256;
    public static int Width => 256;
    public static SimdWidth Simd => SimdWidth.Scalar;

    public static void Multiply(float* a, float* b, int kc, float* tile)
    {
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int p = 0; p < kc; p++, a += 4, b += 4)
        {
            float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
            float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
            c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
            c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
            c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
            c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
        }
        tile[0] = c00; tile[1] = c01; tile[2] = c02; tile[3] = c03;
        tile[4] = c10; tile[5] = c11; tile[6] = c12; tile[7] = c13;
        tile[8] = c20; tile[9] = c21; tile[10] = c22; tile[11] = c23;
        tile[12] = c30; tile[13] = c31; tile[14] = c32; tile[15] = c33;
    }

    public static void WriteBack(float* tile, float* c, long ldc, int rows, int columns, float alpha, float beta) =>
        MicroKernels.WriteBackScalar(tile, 4, c, ldc, rows, columns, alpha, beta);
}

internal static unsafe class MicroKernels
{
    /// <summary>
    /// The write-back one element at a time, for edge tiles and the scalar kernel: the same single rounding as the
    /// vector paths (<c>alpha * t</c>, or one fused <c>fma(alpha, t, beta * c)</c>), so an edge element is computed
    /// exactly as it would be inside a full tile.
    /// </summary>
    public static void WriteBackScalar(float* tile, int stride, float* c, long ldc, int rows, int columns, float alpha, float beta)
    {
        for (int r = 0; r < rows; r++, tile += stride, c += ldc)
            for (int j = 0; j < columns; j++)
                c[j] = beta == 0 ? alpha * tile[j] : MathF.FusedMultiplyAdd(alpha, tile[j], beta * c[j]);
    }
}
