using System.Numerics;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The launches of <c>kernels/windows.cl</c> (see its header for the math, launch shape and bounds). Each window is
/// one group column: group dimension 0 is the window, dimension 1 splits a long window into chunks, and the
/// <c>local x chunks</c> threads of a window stride through its bytes (copies) or elements (gather-converts).
/// </summary>
internal sealed unsafe partial class OpenClBackend
{
    /// <summary>Windows per launch of <c>strided_windows</c>: keeps group counts far below every driver's limit (CUDA-backed OpenCL caps a grid's x at 2^31 - 1).</summary>
    internal const long MaxWindowsPerLaunch = 1L << 30;

    /// <summary>Most threads per group: a multiple of every GPU's warp or wavefront, and within what any OpenCL C 1.2 device allows.</summary>
    private const long PreferredGroupSize = 256;

    /// <summary>Aim for about this many 16-byte units (or converted elements) per thread: enough to hide a load's latency, few enough to spread a window over groups.</summary>
    private const long UnitsPerThread = 8;

    /// <summary>Cap on groups per window; beyond it each thread just copies more units.</summary>
    private const long MaxChunks = 64;

    private const int NoBadStart = int.MaxValue;

    private readonly object _startsGate = new();
    private MemHandle? _startsScratch;  // host starts, uploaded per batch; grown, never shrunk; guarded by _startsGate
    private MemHandle? _sinkFlag;       // the flag of host-start gathers, which nobody reads; guarded by _startsGate
    private readonly object _flagGate = new();
    private MemHandle? _badFlag;        // the lowest bad index of a device-start gather; guarded by _flagGate
    private OpenClKernel? _gather;
    private OpenClKernel? _strided;
    private readonly OpenClKernel?[] _gatherConvert = new OpenClKernel?[9];   // by ConvertSlot

    /// <inheritdoc/>
    public override void GatherWindows(DeviceBuffer frames, long rowBytes, ReadOnlySpan<long> starts, int window, DeviceBuffer output)
    {
        long block = window * rowBytes;
        CheckRange(output, 0, starts.Length * block, nameof(output));
        CheckRange(frames, 0, 0, nameof(frames));
        if (starts.Length == 0 || block == 0) return;
        OpenClKernel kernel = _gather ??= WindowKernel("gather_windows");
        (long local, long chunks) = LaunchShape(kernel, starts.Length, block);
        GatherWithHostStarts(kernel, (starts.Length, chunks), local, frames, starts, output, frames.ByteCount / rowBytes, rowBytes, window);
    }

    /// <inheritdoc/>
    public override void GatherWindows(DeviceBuffer frames, long frameCount, long rowBytes, DeviceBuffer starts, int batch, int window, DeviceBuffer output)
    {
        long block = window * rowBytes;
        CheckRange(starts, 0, batch * (long)sizeof(long), nameof(starts));
        CheckRange(output, 0, batch * block, nameof(output));
        CheckRange(frames, 0, frameCount * rowBytes, nameof(frames));
        if (batch == 0) return;
        if (block == 0)
        {
            CheckStartsOnHost(starts, batch, window, frameCount);
            return;
        }
        OpenClKernel kernel = _gather ??= WindowKernel("gather_windows");
        (long local, long chunks) = LaunchShape(kernel, batch, block);
        GatherWithDeviceStarts(kernel, (batch, chunks), local, frames, starts, output, frameCount, rowBytes, window);
    }

    /// <inheritdoc/>
    public override void GatherWindows(DeviceBuffer frames, DType from, long rowElements, ReadOnlySpan<long> starts, int window, DeviceBuffer output, DType to)
    {
        long elements = window * rowElements;
        CheckRange(output, 0, starts.Length * elements * to.SizeOf(), nameof(output));
        CheckRange(frames, 0, 0, nameof(frames));
        if (starts.Length == 0 || elements == 0) return;
        OpenClKernel kernel = GatherConverter(from, to);
        (long local, long chunks) = ShapeForUnits(kernel, starts.Length, elements);
        long frameCount = frames.ByteCount / (rowElements * from.SizeOf());
        GatherWithHostStarts(kernel, (starts.Length, chunks), local, frames, starts, output, frameCount, rowElements, window);
    }

    /// <inheritdoc/>
    public override void GatherWindows(DeviceBuffer frames, DType from, long frameCount, long rowElements, DeviceBuffer starts, int batch, int window, DeviceBuffer output, DType to)
    {
        long elements = window * rowElements;
        CheckRange(starts, 0, batch * (long)sizeof(long), nameof(starts));
        CheckRange(output, 0, batch * elements * to.SizeOf(), nameof(output));
        CheckRange(frames, 0, frameCount * rowElements * from.SizeOf(), nameof(frames));
        if (batch == 0) return;
        if (elements == 0)
        {
            CheckStartsOnHost(starts, batch, window, frameCount);
            return;
        }
        OpenClKernel kernel = GatherConverter(from, to);
        (long local, long chunks) = ShapeForUnits(kernel, batch, elements);
        GatherWithDeviceStarts(kernel, (batch, chunks), local, frames, starts, output, frameCount, rowElements, window);
    }

    /// <summary>
    /// Launches a gather kernel (<c>gather_windows</c> or a gather-convert: same arguments, <paramref name="row"/> in
    /// bytes or elements) on host starts. The host checked the starts; the kernel checks them again against what the
    /// frames buffer really holds, so even an unchecked caller cannot make it read out of bounds. Its flag goes to a
    /// sink nobody waits for.
    /// </summary>
    private void GatherWithHostStarts(OpenClKernel kernel, (long X, long Y) groups, long local, DeviceBuffer frames, ReadOnlySpan<long> starts,
        DeviceBuffer output, long frameCount, long row, int window)
    {
        lock (_startsGate)
        {
            MemHandle scratch = Scratch(ref _startsScratch, starts.Length * (long)sizeof(long));
            MemHandle sink = Scratch(ref _sinkFlag, sizeof(int));
            // A blocking upload: the span is only ours for this call. The in-order queue runs it after the previous
            // batch's kernel has read the scratch, so one buffer serves every batch.
            using (var lease = new Lease(scratch))
                fixed (long* s = starts)
                    Check(OpenClNative.clEnqueueWriteBuffer(Queue, lease.Pointer, OpenClNative.True, 0, (nuint)((long)starts.Length * sizeof(long)), s, 0, null, null),
                        "clEnqueueWriteBuffer(starts)");
            kernel.Launch(Queue, groups, local, frames, scratch, output, frameCount, row, window, sink);
        }
    }

    /// <summary>
    /// Launches a gather kernel on device starts, then reads its flag back: a bad start was clamped into range and
    /// gathered (clamp-and-flag), so the output is fully defined, and this throws naming the lowest bad index.
    /// </summary>
    private void GatherWithDeviceStarts(OpenClKernel kernel, (long X, long Y) groups, long local, DeviceBuffer frames, DeviceBuffer starts,
        DeviceBuffer output, long frameCount, long row, int window)
    {
        int bad = NoBadStart;
        lock (_flagGate)
        {
            MemHandle flag = Scratch(ref _badFlag, sizeof(int));
            using var lease = new Lease(flag);
            Check(OpenClNative.clEnqueueWriteBuffer(Queue, lease.Pointer, OpenClNative.True, 0, sizeof(int), &bad, 0, null, null), "clEnqueueWriteBuffer(flag)");
            kernel.Launch(Queue, groups, local, frames, starts, output, frameCount, row, window, flag);
            Check(OpenClNative.clEnqueueReadBuffer(Queue, lease.Pointer, OpenClNative.True, 0, sizeof(int), &bad, 0, null, null), "clEnqueueReadBuffer(flag)");
        }
        if (bad == NoBadStart) return;
        long value;
        Read(starts, bad * (long)sizeof(long), new Span<byte>(&value, sizeof(long)));
        throw BadDeviceStart(bad, value, window, frameCount);
    }

    /// <summary>Windows of nothing launch nothing; their starts still obey the rules, checked here instead.</summary>
    private void CheckStartsOnHost(DeviceBuffer starts, int batch, int window, long frameCount)
    {
        var host = new long[batch];
        Read(starts, 0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(host.AsSpan()));
        WindowRules.Starts(host, window, frameCount);
    }

    /// <summary>The gather-convert kernel of one direction, built on first use (a race only looks up the same cached kernel twice).</summary>
    private OpenClKernel GatherConverter(DType from, DType to)
    {
        ref OpenClKernel? slot = ref _gatherConvert[ConvertSlot(from, to)];
        return slot ??= WindowKernel(Backend.GatherConvertKernel(from, to));
    }

    /// <inheritdoc/>
    public override void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output) =>
        StridedWindows(frames, rowBytes, count, window, stride, output, MaxWindowsPerLaunch);

    /// <summary>As the override, with the split size as a parameter so a test can make a small count take several launches.</summary>
    internal void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output, long windowsPerLaunch)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windowsPerLaunch);
        long block = window * rowBytes;
        CheckRange(output, 0, count * block, nameof(output));
        CheckRange(frames, 0, count == 0 ? 0 : ((count - 1) * stride + window) * rowBytes, nameof(frames));
        if (count == 0 || block == 0) return;
        OpenClKernel kernel = _strided ??= WindowKernel("strided_windows");
        (long local, long chunks) = LaunchShape(kernel, Math.Min(count, windowsPerLaunch), block);
        for (long first = 0; first < count; first += windowsPerLaunch)
        {
            long windows = Math.Min(windowsPerLaunch, count - first);
            kernel.Launch(Queue, (windows, chunks), local, frames, output, rowBytes, window, stride, first);
        }
    }

    /// <summary>
    /// Threads per group and groups per window for <paramref name="windows"/> windows of <paramref name="blockBytes"/>,
    /// so that each thread copies about <see cref="UnitsPerThread"/> 16-byte units: a group of as many threads as
    /// that takes (a power of two, at least the kernel's preferred multiple, at most 256 or the kernel's and the
    /// device's limit), then as many chunks (groups per window, at most <see cref="MaxChunks"/>) as it takes.
    /// A fixed 256 would leave most threads idle on short windows: on PoCL (2 cores), 16384 windows of 84 bytes took
    /// 3-7 ms with 256 threads a group and 0.2-0.4 ms with 8; windows of 34 KB ran the same either way.
    /// </summary>
    internal (long Local, long Chunks) LaunchShape(OpenClKernel kernel, long windows, long blockBytes) =>
        ShapeForUnits(kernel, windows, (blockBytes + 15) / 16);

    /// <summary>
    /// As <see cref="LaunchShape"/> for windows of <paramref name="units"/> steps each, whatever a step is: a 16-byte
    /// unit of a copy, or one element of a gather-convert (which converts element by element).
    /// </summary>
    internal (long Local, long Chunks) ShapeForUnits(OpenClKernel kernel, long windows, long units)
    {
        long most = Math.Max(1, Math.Min(PreferredGroupSize, Math.Min(kernel.MaxGroupSize, MaxGroupSize)));
        long threads = (long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(1, (units + UnitsPerThread - 1) / UnitsPerThread));
        long local = Math.Clamp(threads, Math.Min(kernel.GroupMultiple, most), most);
        // A 32-bit device's global size is a 32-bit size_t: shrink groups until windows * local fits.
        if (AddressBits is > 0 and < 64)
            while (local > 1 && windows * local > (1L << AddressBits) - 1) local /= 2;
        long perGroup = local * UnitsPerThread;
        return (local, Math.Clamp((units + perGroup - 1) / perGroup, 1, MaxChunks));
    }

    private OpenClKernel WindowKernel(string name) => Program(KernelSources.Get("windows.cl")).Kernel(name);

    /// <summary>
    /// The scratch buffer in <paramref name="slot"/>, replaced by a larger one when it holds fewer than
    /// <paramref name="bytes"/>. Growth at least doubles, so a run of rising batch sizes allocates O(log n) times and
    /// a steady one never. Releasing the old buffer is safe with commands still queued on it: they hold references.
    /// </summary>
    private MemHandle Scratch(ref MemHandle? slot, long bytes)
    {
        if (slot is not null && slot.ByteCount >= bytes) return slot;
        long size = Math.Max(bytes, Math.Max(256, 2 * (slot?.ByteCount ?? 0)));
        int status;
        IntPtr memory = OpenClNative.clCreateBuffer(Open().Context, OpenClNative.MemReadWrite, (nuint)size, null, &status);
        if (status != OpenClStatus.Success || memory == IntPtr.Zero) throw Failure(status, "clCreateBuffer(scratch)", size);
        slot?.Dispose();
        slot = new MemHandle(memory, size);
        return slot;
    }

    private void DisposeScratch()
    {
        lock (_startsGate)
        {
            _startsScratch?.Dispose();
            _sinkFlag?.Dispose();
        }
        lock (_flagGate) _badFlag?.Dispose();
    }
}
