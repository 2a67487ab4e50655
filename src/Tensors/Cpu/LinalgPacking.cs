using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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
            Across<TElement>(x, r0, rows, q0, kc, panel, width);
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
