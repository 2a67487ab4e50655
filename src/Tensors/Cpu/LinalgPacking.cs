using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeTensor.Cpu;

/// <summary>
/// One GEMM operand as the packing sees it: op(A) by its rows, op(B) by its columns. Element (r, q), r along the
/// panel (a row of op(A), a column of op(B)) and q along the depth k, sits at element
/// <c>r * RowStride + q * DepthStride</c> of <see cref="Data"/>; one of the two strides is 1, which one is what a
/// transpose changes. <see cref="Extent"/> is the number of r (m or n): no read goes past it.
/// </summary>
internal readonly unsafe struct Operand(byte* data, DType type, long extent, long rowStride, long depthStride)
{
    public readonly byte* Data = data;
    public readonly DType Type = type;
    public readonly long Extent = extent;
    public readonly long RowStride = rowStride;
    public readonly long DepthStride = depthStride;
}

/// <summary>
/// Packing for the GEMM: copies a block of an operand into a micro-panel laid out exactly as the micro-kernel reads
/// it, <c>panel[q * width + r]</c>, widening Float16 and BFloat16 to float on the way (exactly, with the rules of
/// <see cref="PrecisionKernels"/>), and zero-filling the rows past the operand's edge so the kernel always runs a whole
/// tile. Whichever way the operand is stored, the kernel then reads one contiguous stream per panel.
/// </summary>
internal static unsafe class LinalgPacking
{
    /// <summary>Floats a panel buffer needs past <c>kc * width</c>: the vector copy may run one vector past a row's end.</summary>
    public const int Slack = 16;

    /// <summary>
    /// <c>panel[q * width + r] = x[r0 + r, q0 + q]</c> for r &lt; <paramref name="rows"/> and q &lt; <paramref name="kc"/>,
    /// and 0 for <paramref name="rows"/> &lt;= r &lt; <paramref name="width"/>.
    /// </summary>
    public static void Panel(in Operand x, long r0, int rows, long q0, int kc, float* panel, int width, SimdWidth simd)
    {
        switch (x.Type)
        {
            case DType.Float32: Panel<SingleElement>(x, r0, rows, q0, kc, panel, width, simd); break;
            case DType.Float16: Panel<HalfElement>(x, r0, rows, q0, kc, panel, width, simd); break;
            case DType.BFloat16: Panel<BFloat16Element>(x, r0, rows, q0, kc, panel, width, simd); break;
            default: throw new ArgumentException($"no matrix product for {x.Type} operands", nameof(x));
        }
    }

    private static void Panel<TElement>(in Operand x, long r0, int rows, long q0, int kc, float* panel, int width, SimdWidth simd)
        where TElement : IElement
    {
        if (x.RowStride != 1)
        {
            if (simd == SimdWidth.V512 && Avx512F.IsSupported && (width <= 16 || width % 16 == 0))
                for (int strip = 0; strip < width; strip += 16)
                    Across16<TElement>(x, r0 + strip, Math.Clamp(rows - strip, 0, 16), q0, kc, panel + strip, width);
            else Across<TElement>(x, r0, rows, q0, kc, panel, width);
            return;
        }
        switch (simd)
        {
            case SimdWidth.V512: Along<TElement, Lanes512, Vector512<uint>>(x, r0, rows, q0, kc, panel, width); break;
            case SimdWidth.V256: Along<TElement, Lanes256, Vector256<uint>>(x, r0, rows, q0, kc, panel, width); break;
            case SimdWidth.V128: Along<TElement, Lanes128, Vector128<uint>>(x, r0, rows, q0, kc, panel, width); break;
            default: AlongScalar<TElement>(x, r0, rows, q0, kc, panel, width); break;
        }
    }

    /// <summary>
    /// The panel's rows lie side by side in memory (op(A) stored transposed, op(B) stored plainly): each depth step is a
    /// short contiguous copy. Whole vectors when the panel is full and the vectors stay inside the operand's row; a
    /// last vector may spill into the next step's slot (rewritten next) or into the buffer's <see cref="Slack"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Along<TElement, TLanes, TVector>(in Operand x, long r0, int rows, long q0, int kc, float* panel, int width)
        where TElement : IElement where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        int lanes = TLanes.Count, covered = (width + lanes - 1) / lanes * lanes;
        if (rows < width || r0 + covered > x.Extent)
        {
            AlongScalar<TElement>(x, r0, rows, q0, kc, panel, width);
            return;
        }
        byte* source = x.Data + (r0 + q0 * x.DepthStride) * TElement.Size;
        long step = x.DepthStride * TElement.Size;
        for (int q = 0; q < kc; q++, source += step, panel += width)
            for (int j = 0; j < covered; j += lanes)
                TLanes.Store(TElement.Load<TLanes, TVector>(source, j), (uint*)panel + j);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AlongScalar<TElement>(in Operand x, long r0, int rows, long q0, int kc, float* panel, int width) where TElement : IElement
    {
        byte* source = x.Data + (r0 + q0 * x.DepthStride) * TElement.Size;
        long step = x.DepthStride * TElement.Size;
        for (int q = 0; q < kc; q++, source += step, panel += width)
        {
            int r = 0;
            for (; r < rows; r++) panel[r] = TElement.Load(source, r);
            for (; r < width; r++) panel[r] = 0;
        }
    }

    /// <summary>
    /// The depth is contiguous instead (op(A) stored plainly, op(B) stored transposed): each row of the operand is read
    /// along k and scattered into its lane of every depth step, a transpose done while packing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Across<TElement>(in Operand x, long r0, int rows, long q0, int kc, float* panel, int width) where TElement : IElement
    {
        for (int r = 0; r < rows; r++)
        {
            byte* source = x.Data + ((r0 + r) * x.RowStride + q0) * TElement.Size;
            float* lane = panel + r;
            for (int q = 0; q < kc; q++, lane += width) *lane = TElement.Load(source, q);
        }
        for (int r = rows; r < width; r++)
        {
            float* lane = panel + r;
            for (int q = 0; q < kc; q++, lane += width) *lane = 0;
        }
    }

    /// <summary>
    /// <see cref="Across"/> for one strip of up to 16 lanes of a panel (the panel is at most 16 wide, or a whole number of
    /// strips) with AVX-512: sixteen depth steps at a time, one 16-element load from each row (all issued together, so
    /// their cache misses overlap), a 16 x 16 transpose in registers (unpacks inside 128-bit lanes, then 128-bit lane
    /// shuffles: 64 shuffles for 256 elements), and one 16-float store per depth step. In a panel narrower than 16 a step's
    /// store spills 16 - width floats into the next step's slot, so the stores go in depth order and the next rewrites it
    /// (the last one lands in the tail's slot, rewritten below, or in the buffer's <see cref="Slack"/>). Rows past
    /// <paramref name="rows"/> are zero vectors, so the padding comes out of the transpose.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Across16<TElement>(in Operand x, long r0, int rows, long q0, int kc, float* panel, int width) where TElement : IElement
    {
        byte* first = x.Data + (r0 * x.RowStride + q0) * TElement.Size;
        long rowBytes = x.RowStride * TElement.Size;
        int q = 0;
        for (; q + 16 <= kc; q += 16)
        {
            Quad(Row<TElement>(first, rowBytes, 0, rows, q), Row<TElement>(first, rowBytes, 1, rows, q),
                Row<TElement>(first, rowBytes, 2, rows, q), Row<TElement>(first, rowBytes, 3, rows, q), out var u00, out var u01, out var u02, out var u03);
            Quad(Row<TElement>(first, rowBytes, 4, rows, q), Row<TElement>(first, rowBytes, 5, rows, q),
                Row<TElement>(first, rowBytes, 6, rows, q), Row<TElement>(first, rowBytes, 7, rows, q), out var u04, out var u05, out var u06, out var u07);
            Quad(Row<TElement>(first, rowBytes, 8, rows, q), Row<TElement>(first, rowBytes, 9, rows, q),
                Row<TElement>(first, rowBytes, 10, rows, q), Row<TElement>(first, rowBytes, 11, rows, q), out var u08, out var u09, out var u10, out var u11);
            Quad(Row<TElement>(first, rowBytes, 12, rows, q), Row<TElement>(first, rowBytes, 13, rows, q),
                Row<TElement>(first, rowBytes, 14, rows, q), Row<TElement>(first, rowBytes, 15, rows, q), out var u12, out var u13, out var u14, out var u15);
            // u[4g + c] now holds rows 4g..4g+3 of depth steps c, c + 4, c + 8, c + 12, one per 128-bit lane.
            Steps(u00, u04, u08, u12, out var s00, out var s04, out var s08, out var s12);
            Steps(u01, u05, u09, u13, out var s01, out var s05, out var s09, out var s13);
            Steps(u02, u06, u10, u14, out var s02, out var s06, out var s10, out var s14);
            Steps(u03, u07, u11, u15, out var s03, out var s07, out var s11, out var s15);
            // In depth order: each store's spill into the next step's slot is then rewritten by the next store.
            float* step = panel + q * width;
            s00.Store(step); s01.Store(step += width); s02.Store(step += width); s03.Store(step += width);
            s04.Store(step += width); s05.Store(step += width); s06.Store(step += width); s07.Store(step += width);
            s08.Store(step += width); s09.Store(step += width); s10.Store(step += width); s11.Store(step += width);
            s12.Store(step += width); s13.Store(step += width); s14.Store(step += width); s15.Store(step + width);
        }
        for (int lanes = Math.Min(width, 16); q < kc; q++)
        {
            float* step = panel + q * width;
            int r = 0;
            for (; r < rows; r++) step[r] = TElement.Load(first + r * rowBytes, q);
            for (; r < lanes; r++) step[r] = 0;
        }
    }

    /// <summary>
    /// <c>destination[t * destinationStride + r] = source[r * sourceStride + t]</c> for r, t &lt; 16, with the register
    /// transpose of <see cref="Across16{TElement}"/> (AVX-512; the two blocks must not overlap).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose16(float* source, long sourceStride, float* destination, long destinationStride)
    {
        Quad(Vector512.Load(source), Vector512.Load(source + sourceStride), Vector512.Load(source + 2 * sourceStride),
            Vector512.Load(source + 3 * sourceStride), out var u00, out var u01, out var u02, out var u03);
        source += 4 * sourceStride;
        Quad(Vector512.Load(source), Vector512.Load(source + sourceStride), Vector512.Load(source + 2 * sourceStride),
            Vector512.Load(source + 3 * sourceStride), out var u04, out var u05, out var u06, out var u07);
        source += 4 * sourceStride;
        Quad(Vector512.Load(source), Vector512.Load(source + sourceStride), Vector512.Load(source + 2 * sourceStride),
            Vector512.Load(source + 3 * sourceStride), out var u08, out var u09, out var u10, out var u11);
        source += 4 * sourceStride;
        Quad(Vector512.Load(source), Vector512.Load(source + sourceStride), Vector512.Load(source + 2 * sourceStride),
            Vector512.Load(source + 3 * sourceStride), out var u12, out var u13, out var u14, out var u15);
        Steps(u00, u04, u08, u12, out var s00, out var s04, out var s08, out var s12);
        Steps(u01, u05, u09, u13, out var s01, out var s05, out var s09, out var s13);
        Steps(u02, u06, u10, u14, out var s02, out var s06, out var s10, out var s14);
        Steps(u03, u07, u11, u15, out var s03, out var s07, out var s11, out var s15);
        float* d = destination;
        long s = destinationStride;
        s00.Store(d); s01.Store(d + s); s02.Store(d + 2 * s); s03.Store(d + 3 * s);
        s04.Store(d + 4 * s); s05.Store(d + 5 * s); s06.Store(d + 6 * s); s07.Store(d + 7 * s);
        s08.Store(d + 8 * s); s09.Store(d + 9 * s); s10.Store(d + 10 * s); s11.Store(d + 11 * s);
        s12.Store(d + 12 * s); s13.Store(d + 13 * s); s14.Store(d + 14 * s); s15.Store(d + 15 * s);
    }

    /// <summary>Depth steps q .. q + 15 of row r, or zeros past the panel's rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Row<TElement>(byte* first, long rowBytes, int r, int rows, int q) where TElement : IElement =>
        r < rows ? TElement.Load<Lanes512, Vector512<uint>>(first + r * rowBytes, q).AsSingle() : Vector512<float>.Zero;

    /// <summary>Four rows, transposed inside each 128-bit lane: out c holds, per lane l, the four rows' element 4 l + c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quad(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d,
        out Vector512<float> c0, out Vector512<float> c1, out Vector512<float> c2, out Vector512<float> c3)
    {
        Vector512<double> ab0 = Avx512F.UnpackLow(a, b).AsDouble(), ab1 = Avx512F.UnpackHigh(a, b).AsDouble();
        Vector512<double> cd0 = Avx512F.UnpackLow(c, d).AsDouble(), cd1 = Avx512F.UnpackHigh(c, d).AsDouble();
        c0 = Avx512F.UnpackLow(ab0, cd0).AsSingle();
        c1 = Avx512F.UnpackHigh(ab0, cd0).AsSingle();
        c2 = Avx512F.UnpackLow(ab1, cd1).AsSingle();
        c3 = Avx512F.UnpackHigh(ab1, cd1).AsSingle();
    }

    /// <summary>Depth steps c, c + 4, c + 8, c + 12 (lane 0..3 of each row group's vector), gathered by 128-bit lane shuffles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Steps(Vector512<float> g0, Vector512<float> g1, Vector512<float> g2, Vector512<float> g3,
        out Vector512<float> s0, out Vector512<float> s4, out Vector512<float> s8, out Vector512<float> s12)
    {
        Vector512<float> low01 = Avx512F.Shuffle4x128(g0, g1, 0x44), high01 = Avx512F.Shuffle4x128(g0, g1, 0xEE);
        Vector512<float> low23 = Avx512F.Shuffle4x128(g2, g3, 0x44), high23 = Avx512F.Shuffle4x128(g2, g3, 0xEE);
        s0 = Avx512F.Shuffle4x128(low01, low23, 0x88);
        s4 = Avx512F.Shuffle4x128(low01, low23, 0xDD);
        s8 = Avx512F.Shuffle4x128(high01, high23, 0x88);
        s12 = Avx512F.Shuffle4x128(high01, high23, 0xDD);
    }

    /// <summary>How one element of an input dtype becomes binary32 bits, exactly: alone, and a vector's worth at once.</summary>
    private interface IElement
    {
        static abstract int Size { get; }
        static abstract float Load(byte* source, long i);
        static abstract TVector Load<TLanes, TVector>(byte* source, long i) where TLanes : IUIntLanes<TVector> where TVector : struct;
    }

    private readonly struct SingleElement : IElement
    {
        public static int Size => 4;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* s, long i) => ((float*)s)[i];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TVector Load<TLanes, TVector>(byte* s, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.Load((uint*)s + i);
    }

    private readonly struct HalfElement : IElement
    {
        public static int Size => 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* s, long i) => BitConverter.UInt32BitsToSingle(PrecisionKernels.HalfToSingle(((ushort*)s)[i]));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TVector Load<TLanes, TVector>(byte* s, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            PrecisionKernels.HalfToSingle<TLanes, TVector>(TLanes.LoadWidening((ushort*)s + i));
    }

    private readonly struct BFloat16Element : IElement
    {
        public static int Size => 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* s, long i) => BitConverter.UInt32BitsToSingle((uint)((ushort*)s)[i] << 16);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TVector Load<TLanes, TVector>(byte* s, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.ShiftLeft(TLanes.LoadWidening((ushort*)s + i), 16);
    }
}
