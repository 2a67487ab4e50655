using System.Runtime.Intrinsics.X86;

namespace NativeTensor.Cpu;

/// <summary>
/// CPU kernels of <see cref="NativeTensor.Windows"/>. A window is one contiguous block of
/// <c>window * rowBytes</c> bytes in frames, and block b of the output is contiguous too, so a batch is
/// <c>batch</c> block copies. The output byte range is cut into one piece per core, each piece walking the
/// blocks it overlaps; a copy never crosses its block, so every read stays inside the window it belongs to.
/// </summary>
/// <remarks>
/// A plain copy streams through memory and the hardware prefetchers keep up; a gather jumps to a random window
/// every few tens of kilobytes and would start each one cold. So each block is copied with
/// <see cref="BlockCopy.Streaming"/>, which prefetches on past the block's end into the next block this thread copies.
/// </remarks>
internal static unsafe class WindowKernels
{
    /// <summary>How much of the next window a converting gather prefetches before converting the current one.</summary>
    private const long PrefetchBytes = 4096;

    /// <summary><c>output[b] = frames[starts[b] * rowBytes ..][.. window * rowBytes]</c>; starts were checked by the caller.</summary>
    public static void Gather(byte* frames, long rowBytes, long* starts, int batch, int window, byte* output, SimdWidth width)
    {
        nint f = (nint)frames, s = (nint)starts;
        Blocks(batch, window * rowBytes, output, width, b => (byte*)f + ((long*)s)[b] * rowBytes);
    }

    /// <summary><c>output[i] = frames[i * stride * rowBytes ..][.. window * rowBytes]</c> for i in [0, count).</summary>
    public static void Strided(byte* frames, long rowBytes, long count, int window, int stride, byte* output, SimdWidth width)
    {
        nint f = (nint)frames;
        Blocks(count, window * rowBytes, output, width, b => (byte*)f + b * stride * rowBytes);
    }

    /// <summary>
    /// <c>output[b, ...] = (to) frames[starts[b] + t, ...]</c>: the fused gather-convert, one pass. Each window is
    /// converted as it is gathered, through the conversion kernels' vector loops, pieces split over the cores by
    /// output element.
    /// </summary>
    public static void GatherConverting(byte* frames, DType from, long rowElements, long* starts, int batch, int window, byte* output, DType to, SimdWidth width)
    {
        long blockElements = window * rowElements, total = batch * blockElements;
        if (total == 0) return;
        nint f = (nint)frames, s = (nint)starts, o = (nint)output;
        int inSize = from.SizeOf(), outSize = to.SizeOf();
        int parts = CpuParallel.Parts(total * (inSize + outSize), BlockCopy.ParallelThreshold);
        CpuParallel.For(parts, total, (lo, hi) =>
        {
            for (long at = lo; at < hi;)
            {
                long block = at / blockElements, within = at - block * blockElements;
                long length = Math.Min(blockElements - within, hi - at);
                byte* source = (byte*)f + (((long*)s)[block] * rowElements + within) * inSize;
                // The next window starts cold in memory (see Streaming); ask for its first lines before converting this one.
                if (at + length < hi && Sse.IsSupported)
                {
                    byte* next = (byte*)f + ((long*)s)[block + 1] * rowElements * inSize;
                    long ahead = Math.Min(PrefetchBytes, Math.Min(blockElements, hi - at - length) * inSize);
                    for (long line = 0; line < ahead; line += 64) Sse.Prefetch1(next + line);
                }
                PrecisionKernels.ConvertSerial(source, from, (byte*)o + at * outSize, to, length, width);
                at += length;
            }
        });
    }

    private delegate byte* BlockSource(long block);

    /// <summary>Copies <paramref name="count"/> blocks of <paramref name="blockBytes"/> into consecutive output blocks.</summary>
    private static void Blocks(long count, long blockBytes, byte* output, SimdWidth width, BlockSource source)
    {
        long total = count * blockBytes;
        if (total == 0) return;
        nint o = (nint)output;
        CpuParallel.For(CpuParallel.Parts(total, BlockCopy.ParallelThreshold), total, (lo, hi) =>
        {
            for (long at = lo; at < hi;)
            {
                long block = at / blockBytes, within = at - block * blockBytes;
                // Whole blocks go two at a time while two remain in this piece; a piece's ragged ends go alone.
                if (within == 0 && at + 2 * blockBytes <= hi)
                {
                    (IntPtr next0, long nextBytes0) = Next(block + 2, at + 2 * blockBytes);
                    (IntPtr next1, long nextBytes1) = Next(block + 3, at + 3 * blockBytes);
                    BlockCopy.StreamingPair(source(block), (byte*)o + at, source(block + 1), (byte*)o + at + blockBytes, (nuint)blockBytes,
                        (byte*)next0, (nuint)nextBytes0, (byte*)next1, (nuint)nextBytes1, width);
                    at += 2 * blockBytes;
                    continue;
                }
                long length = Math.Min(blockBytes - within, hi - at);
                (IntPtr next, long nextBytes) = Next(block + 1, at + length);
                BlockCopy.Streaming(source(block) + within, (byte*)o + at, (nuint)length, (byte*)next, (nuint)nextBytes, width);
                at += length;
            }

            // Where this thread's stream goes after a block: the start of `block`, when its bytes at output offset
            // `from` still belong to this piece, and how many of them do.
            (IntPtr, long) Next(long block, long from)
            {
                long bytes = Math.Min(blockBytes, hi - from);
                return bytes > 0 ? ((IntPtr)source(block), bytes) : (IntPtr.Zero, 0);
            }
        });
    }
}
