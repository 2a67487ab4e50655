using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>
/// Copies a block of bytes between two non-overlapping places with the widest allowed vector: one unaligned
/// vector at the head, aligned stores (four per turn) through the body, and one unaligned vector that ends
/// exactly at the tail, overlapping what the body wrote instead of finishing with a byte loop.
/// </summary>
internal static unsafe class BlockCopy
{
    /// <summary>Below this many bytes one thread copies alone: the hand-off to a second core costs more than it saves.</summary>
    public const long ParallelThreshold = 1 << 19;

    /// <summary>Copies <paramref name="bytes"/> from <paramref name="source"/> to <paramref name="destination"/>, over all cores when large.</summary>
    public static void Copy(byte* source, byte* destination, long bytes, SimdWidth width)
    {
        int parts = CpuParallel.Parts(bytes, ParallelThreshold);
        if (parts == 1)
        {
            Serial(source, destination, (nuint)bytes, width);
            return;
        }
        nint s = (nint)source, d = (nint)destination;
        CpuParallel.For(parts, bytes, (lo, hi) => Serial((byte*)s + lo, (byte*)d + lo, (nuint)(hi - lo), width));
    }

    /// <summary>One thread's copy; the kernels call this for each piece of their own split.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Serial(byte* source, byte* destination, nuint bytes, SimdWidth width)
    {
        switch (width)
        {
            case SimdWidth.V512: Vectors<Move512>(source, destination, bytes); break;
            case SimdWidth.V256: Vectors<Move256>(source, destination, bytes); break;
            case SimdWidth.V128: Vectors<Move128>(source, destination, bytes); break;
            default: Scalar(source, destination, bytes); break;
        }
    }

    private static void Vectors<TMove>(byte* s, byte* d, nuint n) where TMove : IMove
    {
        nuint size = TMove.Size;
        if (n < size)
        {
            Smaller<TMove>(s, d, n);
            return;
        }
        nuint end = n - size;                       // the tail vector covers [end, n)
        TMove.Unaligned(s, d);                      // the head vector covers [0, size)
        nuint i = size - ((nuint)d & (size - 1));   // first offset at which d + i is aligned, in (0, size]
        for (; i + 4 * size <= end; i += 4 * size)
        {
            TMove.Aligned(s + i, d + i);
            TMove.Aligned(s + i + size, d + i + size);
            TMove.Aligned(s + i + 2 * size, d + i + 2 * size);
            TMove.Aligned(s + i + 3 * size, d + i + 3 * size);
        }
        for (; i < end; i += size) TMove.Aligned(s + i, d + i);
        TMove.Unaligned(s + end, d + end);
    }

    /// <summary>A block shorter than one vector steps down to the next width.</summary>
    private static void Smaller<TMove>(byte* s, byte* d, nuint n) where TMove : IMove
    {
        if (TMove.Size == 64) Vectors<Move256>(s, d, n);
        else if (TMove.Size == 32) Vectors<Move128>(s, d, n);
        else Scalar(s, d, n);
    }

    /// <summary>The fallback without vectors: eight bytes at a time, then single bytes.</summary>
    private static void Scalar(byte* s, byte* d, nuint n)
    {
        nuint i = 0;
        for (; i + 8 <= n; i += 8) Unsafe.WriteUnaligned(d + i, Unsafe.ReadUnaligned<ulong>(s + i));
        for (; i < n; i++) d[i] = s[i];
    }

    private interface IMove
    {
        static abstract nuint Size { get; }
        static abstract void Unaligned(byte* s, byte* d);
        static abstract void Aligned(byte* s, byte* d);
    }

    private readonly struct Move512 : IMove
    {
        public static nuint Size => 64;
        public static void Unaligned(byte* s, byte* d) => Vector512.Load(s).Store(d);
        public static void Aligned(byte* s, byte* d) => Vector512.Load(s).StoreAligned(d);
    }

    private readonly struct Move256 : IMove
    {
        public static nuint Size => 32;
        public static void Unaligned(byte* s, byte* d) => Vector256.Load(s).Store(d);
        public static void Aligned(byte* s, byte* d) => Vector256.Load(s).StoreAligned(d);
    }

    private readonly struct Move128 : IMove
    {
        public static nuint Size => 16;
        public static void Unaligned(byte* s, byte* d) => Vector128.Load(s).Store(d);
        public static void Aligned(byte* s, byte* d) => Vector128.Load(s).StoreAligned(d);
    }
}
