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
                long length = Math.Min(blockBytes - within, hi - at);
                // What this thread copies after this block: the start of the next one, if its piece goes on.
                long nextLength = Math.Min(blockBytes, hi - at - length);
                byte* next = nextLength > 0 ? source(block + 1) : null;
                BlockCopy.Streaming(source(block) + within, (byte*)o + at, (nuint)length, next, (nuint)nextLength, width);
                at += length;
            }
        });
    }
}
