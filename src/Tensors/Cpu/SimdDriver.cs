using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>How <see cref="SimdDriver"/> finishes a range that is not a whole number of vectors: each op declares what its nature allows.</summary>
internal enum SimdTail
{
    /// <summary>
    /// Out of place and idempotent (copy, convert): an unaligned head vector lets the body store aligned, and one last
    /// vector moved back to end exactly at the tail redoes a few elements, writing the same bits again.
    /// </summary>
    Overlap,
    /// <summary>In place and not idempotent (x *= s, an optimizer step): every element exactly once; the rest at narrower widths, then scalar.</summary>
    Once,
    /// <summary>A read-only search (is any element non-finite?): as <see cref="Once"/>, and it stops at the first turn of vectors that flagged.</summary>
    Search,
}

/// <summary>
/// One element-wise kernel as an operator struct: pointers and constants as fields, its rule once per lane type and
/// once in scalar form. The driver owns the width, the loop and the tail; the JIT specialises it per struct, so
/// nothing here costs a call. Elements are counted in the op's unit (<see cref="ElementsPerLane"/> per 32-bit lane).
/// </summary>
internal unsafe interface ISimdOp
{
    static abstract SimdTail Tail { get; }
    /// <summary>1 for binary32, 2 for packed 16-bit values, 4 for bytes.</summary>
    static virtual int ElementsPerLane => 1;
    /// <summary>For <see cref="SimdTail.Overlap"/>: the bytes one element stores at <see cref="Output"/>, so the driver can align them (0: do not).</summary>
    static virtual int OutputBytes => 0;
    /// <summary>Read only where <see cref="OutputBytes"/> is not 0 (a default method on a struct would box).</summary>
    byte* Output => null;
    /// <summary>Vectors a turn of the main loop, 4 or 2: four keep more loads in flight; a body too big for the 16 registers of AVX2 spills less at two.</summary>
    static virtual int VectorsPerTurn => 4;
    /// <summary>The op's constants as lanes, once per range rather than once per vector.</summary>
    void Splat<TLanes, TVector>(out SimdConstants<TVector> constants) where TLanes : IUIntLanes<TVector> where TVector : struct;
    /// <summary>One vector of elements from <paramref name="i"/>; sets lanes of <paramref name="flags"/> for elements of note (non-finite).</summary>
    void Vector<TLanes, TVector>(long i, in SimdConstants<TVector> constants, ref TVector flags) where TLanes : IUIntLanes<TVector> where TVector : struct;
    /// <summary>Elements [start, end) by the scalar rule, bit for bit the vector rule; whether any was flagged.</summary>
    bool Scalar(long start, long end);
    /// <summary>Once per turn of vectors, what the op does about the memory ahead of [i, i + count): nothing, or prefetch.</summary>
    void Ahead(long i, long count);
}

/// <summary>Up to nine splatted constants of one op (AdamW needs nine); an op uses the first few.</summary>
internal struct SimdConstants<TVector> where TVector : struct
{
    public TVector C0, C1, C2, C3, C4, C5, C6, C7, C8;
}

/// <summary>
/// The one place a CPU element-wise kernel's width is chosen and its vector loop and tail are written, after
/// TensorPrimitives' operator structs and shared driver. Threading stays with the callers (<see cref="CpuParallel"/>):
/// each thread drives its own [start, end).
/// </summary>
internal static unsafe class SimdDriver
{
    /// <summary>
    /// Runs <paramref name="op"/> over elements [start, end) with vectors no wider than <paramref name="width"/>. A range
    /// shorter than one vector steps down to the widest vector it fills, then to the scalar body.
    /// </summary>
    /// <returns>Whether any element was flagged (for a <see cref="SimdTail.Search"/>: whether one was found).</returns>
    public static bool Run<TOp>(TOp op, long start, long end, SimdWidth width) where TOp : struct, ISimdOp
    {
        long length = end - start;
        int lane = TOp.ElementsPerLane;
        if (width >= SimdWidth.V512 && length >= Vector512<uint>.Count * lane) return Vectors<TOp, Lanes512, Vector512<uint>>(op, start, end);
        if (width >= SimdWidth.V256 && length >= Vector256<uint>.Count * lane) return Vectors<TOp, Lanes256, Vector256<uint>>(op, start, end);
        if (width >= SimdWidth.V128 && length >= Vector128<uint>.Count * lane) return Vectors<TOp, Lanes128, Vector128<uint>>(op, start, end);
        return length > 0 && op.Scalar(start, end);
    }

    /// <summary>At least one whole vector: turns of several vectors, then single ones, then the op's tail.</summary>
    private static bool Vectors<TOp, TLanes, TVector>(TOp op, long start, long end)
        where TOp : struct, ISimdOp where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        long n = TLanes.Count * TOp.ElementsPerLane;
        op.Splat<TLanes, TVector>(out SimdConstants<TVector> c);
        TVector flags = TLanes.Splat(0);
        long i = start;
        if (TOp.Tail == SimdTail.Overlap)
        {
            op.Vector<TLanes, TVector>(start, c, ref flags);
            i = AlignedAfterHead<TOp>(op, start, n);
        }
        long turn = TOp.VectorsPerTurn * n;
        for (; i + turn <= end; i += turn)
        {
            op.Ahead(i, turn);
            op.Vector<TLanes, TVector>(i, c, ref flags);
            op.Vector<TLanes, TVector>(i + n, c, ref flags);
            if (TOp.VectorsPerTurn == 4)
            {
                op.Vector<TLanes, TVector>(i + 2 * n, c, ref flags);
                op.Vector<TLanes, TVector>(i + 3 * n, c, ref flags);
            }
            if (TOp.Tail == SimdTail.Search && TLanes.AnyNonZero(flags)) return true;
        }
        for (; i + n <= end; i += n) op.Vector<TLanes, TVector>(i, c, ref flags);
        if (TOp.Tail == SimdTail.Overlap)
        {
            if (i < end) op.Vector<TLanes, TVector>(end - n, c, ref flags);
            return TLanes.AnyNonZero(flags);
        }
        bool flagged = TLanes.AnyNonZero(flags);
        if (TOp.Tail == SimdTail.Search && flagged) return true;
        // The rest is shorter than a vector: half the width, down to scalar (| runs it even when already flagged).
        SimdWidth narrower = TLanes.Count == Vector512<uint>.Count ? SimdWidth.V256 : TLanes.Count == Vector256<uint>.Count ? SimdWidth.V128 : SimdWidth.Scalar;
        return Run(op, i, end, narrower) | flagged;
    }

    /// <summary>After the head vector: the first element whose store is vector-aligned (so none splits a cache line), if whole elements get there.</summary>
    private static long AlignedAfterHead<TOp>(TOp op, long start, long n) where TOp : struct, ISimdOp
    {
        long bytes = TOp.OutputBytes;
        if (bytes == 0) return start + n;
        long skew = (long)((nuint)(op.Output + (start + n) * bytes) & (nuint)(n * bytes - 1));
        return skew % bytes == 0 ? start + n - skew / bytes : start + n;
    }
}
