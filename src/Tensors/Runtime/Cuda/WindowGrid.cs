namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The launch shape of the windows kernels (see the header of <c>kernels/windows.cl</c>): grid x is the window,
/// grid y splits a long window into chunks, and all <c>BlockThreads * chunks</c> threads of a window stride
/// through its units (16, 8, 4, 2 or 1 bytes, the widest that divides both addresses and the length).
/// </summary>
/// <remarks>
/// A copy is bandwidth-bound only while enough loads are in flight. Each thread of the portable kernel has one load
/// outstanding per loop trip, so the grid must hold about one wave of resident threads (multiprocessors times
/// resident threads per multiprocessor) before memory is saturated; a 256-window batch with one block per window
/// fills a fifth of an H100. Chunks add threads until the grid holds a wave, but never so many that a thread is left
/// fewer than <see cref="FewestUnitsPerThread"/> units (below that, index arithmetic and launch cost dominate), and
/// always enough that none has more than <see cref="MostUnitsPerThread"/> while the y limit allows.
/// </remarks>
internal static class WindowGrid
{
    /// <summary>Threads per block (dimension x).</summary>
    public const int BlockThreads = 256;

    /// <summary>gridDim.y limit on every CUDA GPU.</summary>
    public const int MaxChunks = 65535;

    /// <summary>Windows per strided launch; the kernel's <c>first</c> argument offsets later launches. Below gridDim.x's 2^31 - 1.</summary>
    public const long MaxStridedWindows = 1L << 30;

    public const int FewestUnitsPerThread = 4;
    public const int MostUnitsPerThread = 16;

    /// <summary>
    /// The narrowest unit any window of rows of <paramref name="rowBytes"/> can get: every address the kernel
    /// forms is a 256-aligned base plus a multiple of the row size, so the row's lowest set bit bounds it (capped at 16).
    /// </summary>
    public static int NarrowestUnit(long rowBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowBytes);
        return (int)Math.Min(16, rowBytes & -rowBytes);
    }

    /// <summary>Chunks (grid y) for <paramref name="windows"/> windows of <paramref name="blockBytes"/> bytes each.</summary>
    /// <param name="blockBytes">Bytes of one window, <c>window * rowBytes</c>, &gt; 0.</param>
    /// <param name="rowBytes">Bytes of one frame, &gt; 0.</param>
    /// <param name="windows">Windows in the launch (grid x), &gt; 0.</param>
    /// <param name="residentThreads">Threads the device holds at once (multiprocessors times threads per multiprocessor).</param>
    public static int Chunks(long blockBytes, long rowBytes, long windows, long residentThreads)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windows);
        return ChunksForUnits(blockBytes / NarrowestUnit(rowBytes), windows, residentThreads);
    }

    /// <summary>
    /// Chunks (grid y) for <paramref name="windows"/> windows of <paramref name="units"/> steps each, whatever a step
    /// is: a copy unit, or one element of a gather-convert (which converts element by element).
    /// </summary>
    public static int ChunksForUnits(long units, long windows, long residentThreads)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(units);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windows);
        long fewest = CeilDiv(units, (long)BlockThreads * MostUnitsPerThread);
        long most = Math.Max(fewest, units / ((long)BlockThreads * FewestUnitsPerThread));
        long wave = CeilDiv(Math.Max(residentThreads, BlockThreads), windows * BlockThreads);
        return (int)Math.Clamp(Math.Clamp(wave, fewest, most), 1, MaxChunks);
    }

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
