using System.Numerics;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The launches of <c>kernels/precision.cl</c> (see its header for the bit rules, launch shape and bounds): one
/// grid-stride kernel per direction among Float32, Float16 and BFloat16. The same dtype on both sides is a copy.
/// </summary>
internal sealed partial class OpenClBackend
{
    /// <summary>Each thread converts at least this many elements, so index arithmetic and group start-up are spread thin.</summary>
    private const long ConvertElementsPerThread = 8;

    /// <summary>
    /// Cap on groups per conversion: 2^14 groups of 256 are several waves of resident threads on any current GPU and
    /// far more groups than a CPU device has cores; past it each thread converts more elements. The global size it
    /// allows (2^22) also fits a 32-bit device's size_t.
    /// </summary>
    private const long MaxConvertGroups = 1L << 14;

    /// <summary>The kernel of each direction, indexed by <see cref="ConvertSlot"/>; filled on first use (a race only looks up the same cached kernel twice).</summary>
    private readonly OpenClKernel?[] _convert = new OpenClKernel?[9];

    /// <inheritdoc/>
    public override void Convert(DeviceBuffer source, DType from, DeviceBuffer destination, DType to, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        CheckRange(source, 0, count * from.SizeOf(), nameof(source));
        CheckRange(destination, 0, count * to.SizeOf(), nameof(destination));
        if (from == to)
        {
            Copy(source, 0, destination, 0, count * from.SizeOf());
            return;
        }
        // The kernel reads and writes through restrict pointers, and a narrowing in place would overwrite elements
        // other threads have yet to read.
        if (ReferenceEquals(source, destination))
            throw new ArgumentException("destination is source itself: convert into another buffer", nameof(destination));
        if (count == 0) return;
        ref OpenClKernel? slot = ref _convert[ConvertSlot(from, to)];
        OpenClKernel kernel = slot ??= Program(KernelSources.Get("precision.cl")).Kernel(ConvertKernel(from, to));
        (long local, long groups) = ConvertShape(kernel, count);
        kernel.Launch(Queue, (groups, 1), local, source, destination, count);
    }

    /// <summary>
    /// Threads per group (the largest power of two within 256 and the kernel's and device's limits) and groups, so
    /// that each thread converts at least <see cref="ConvertElementsPerThread"/> elements, with at most
    /// <see cref="MaxConvertGroups"/> groups.
    /// </summary>
    internal (long Local, long Groups) ConvertShape(OpenClKernel kernel, long count)
    {
        long most = Math.Max(1, Math.Min(PreferredGroupSize, Math.Min(kernel.MaxGroupSize, MaxGroupSize)));
        long local = 1L << BitOperations.Log2((ulong)most);
        long perGroup = local * ConvertElementsPerThread;
        return (local, Math.Clamp((count + perGroup - 1) / perGroup, 1, MaxConvertGroups));
    }

    private static int ConvertSlot(DType from, DType to) => FloatIndex(from) * 3 + FloatIndex(to);

    private static int FloatIndex(DType dtype) => dtype switch
    {
        DType.Float32 => 0,
        DType.Float16 => 1,
        DType.BFloat16 => 2,
        _ => throw new ArgumentException($"{dtype} is not a floating-point dtype", nameof(dtype)),
    };
}
