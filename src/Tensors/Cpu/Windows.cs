namespace NativeTensor.Cpu;

/// <summary>
/// CPU kernels of <see cref="NativeTensor.Windows"/>. A window is one contiguous block of
/// <c>window * rowBytes</c> bytes in frames, and block b of the output is contiguous too, so a batch is
/// <c>batch</c> block copies. The output byte range is cut into one piece per core, each piece walking the
/// blocks it overlaps; a copy never crosses its block, so every read stays inside the window it belongs to.
/// </summary>
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
                BlockCopy.Serial(source(block) + within, (byte*)o + at, (nuint)length, width);
                at += length;
            }
        });
    }
}
