namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// Conversions among Float32, Float16 and BFloat16 on CUDA: the grid-stride kernels of <c>kernels/precision.cl</c>
/// (see its header for the bit rules, launch shape and bounds), launched inside a <see cref="Work"/> with both
/// buffers leased. The same dtype on both sides is a device copy.
/// </summary>
internal sealed unsafe partial class CudaBackend
{
    private const string PrecisionSource = "precision.cl";

    /// <summary>Threads per block of the conversion kernels.</summary>
    internal const int ConvertBlockThreads = 256;

    /// <summary>Each thread converts at least this many elements, so index arithmetic and block start-up are spread thin.</summary>
    internal const long ConvertElementsPerThread = 8;

    /// <summary>
    /// The grid holds at most this many waves of resident threads: enough blocks in flight to keep every
    /// multiprocessor's memory pipe full through the tail, few enough that each thread loops over many elements.
    /// </summary>
    internal const long ConvertWaves = 4;

    public override void Convert(DeviceBuffer source, DType from, DeviceBuffer destination, DType to, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (from == to)
        {
            Copy(source, 0, destination, 0, checked(count * from.SizeOf()));
            return;
        }
        using Lease origin = Hold(source, 0, checked(count * from.SizeOf()), nameof(source));
        using Lease target = Hold(destination, 0, checked(count * to.SizeOf()), nameof(destination));
        // The kernel reads and writes through restrict pointers, and a narrowing in place would overwrite elements
        // other threads have yet to read.
        if (ReferenceEquals(source, destination))
            throw new ArgumentException("destination is source itself: convert into another buffer", nameof(destination));
        if (count == 0) return;
        string name = ConvertKernel(from, to);
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(PrecisionSource, name);
        ulong src = At(origin, 0);
        ulong dst = At(target, 0);
        // name(src, dst, count): a pointer to each argument's value, in order.
        void** arguments = stackalloc void*[3];
        arguments[0] = &src;
        arguments[1] = &dst;
        arguments[2] = &count;
        Launch(work, kernel, name, ConvertBlocks(count, ResidentThreads), 1, ConvertBlockThreads, arguments);
    }

    /// <summary>
    /// Blocks for <paramref name="count"/> elements: enough that each thread has at least
    /// <see cref="ConvertElementsPerThread"/>, at most <see cref="ConvertWaves"/> waves of the device's
    /// <paramref name="residentThreads"/> (at least one block), far below gridDim.x's 2^31 - 1.
    /// </summary>
    internal static uint ConvertBlocks(long count, long residentThreads)
    {
        long perBlock = ConvertBlockThreads * ConvertElementsPerThread;
        long most = Math.Max(1, ConvertWaves * residentThreads / ConvertBlockThreads);
        return (uint)Math.Clamp((count + perBlock - 1) / perBlock, 1, Math.Min(most, int.MaxValue));
    }
}
