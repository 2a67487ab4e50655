using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The windows op family on CUDA: <c>gather_windows</c>, the gather-converts and <c>strided_windows</c> of <c>kernels/windows.cl</c> (see
/// its header for the math, launch shape and bounds). Every launch runs inside a <see cref="Work"/>, with each buffer
/// argument leased, so neither the module nor the memory can go away before cuLaunchKernel has returned.
/// </summary>
internal sealed unsafe partial class CudaBackend
{
    private const string WindowsSource = "windows.cl";

    /// <summary>The flag's value when no start was bad: the kernel keeps the lowest bad index by atomic min.</summary>
    private const int NoBadStart = int.MaxValue;

    /// <summary>Serialises the host-starts staging (pinned block, device block, their event) and the launch that reads it.</summary>
    private readonly object _uploadLock = new();

    /// <summary>Serialises the reset, launch and read-back of the device-side bad-start flag.</summary>
    private readonly object _flagLock = new();

    private IntPtr _uploadHost;
    private ulong _uploadDevice;
    private long _uploadCapacity;
    private IntPtr _uploaded;
    private bool _uploadPending;
    private ulong _badFlag;
    /// <summary>The flag of host-start gathers, which nobody reads: they hold the upload lock, not the flag lock, so they must not touch _badFlag.</summary>
    private ulong _sinkFlag;

    public override void GatherWindows(DeviceBuffer frames, long rowBytes, ReadOnlySpan<long> starts, int window, DeviceBuffer output)
    {
        long block = checked(window * rowBytes);
        using Lease source = Hold(frames, 0, frames.ByteCount, nameof(frames));
        using Lease target = Hold(output, 0, checked(starts.Length * block), nameof(output));
        if (starts.IsEmpty || block == 0) return;
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(WindowsSource, "gather_windows");
        int chunks = WindowGrid.Chunks(block, rowBytes, starts.Length, ResidentThreads);
        lock (_uploadLock)
        {
            ulong deviceStarts = Upload(work.Context, starts);
            // The starts were checked on the host, so the kernel's own check never fires here; it gets the real frame
            // count anyway, so it would clamp rather than read out of bounds even if that check had been skipped.
            LaunchGather(work, kernel, "gather_windows", At(source, 0), deviceStarts, At(target, 0), frames.ByteCount / rowBytes, rowBytes, window,
                starts.Length, chunks, _sinkFlag);
        }
    }

    public override void GatherWindows(DeviceBuffer frames, long frameCount, long rowBytes, DeviceBuffer starts, int batch, int window, DeviceBuffer output)
    {
        long block = checked(window * rowBytes);
        using Lease source = Hold(frames, 0, checked(frameCount * rowBytes), nameof(frames));
        using Lease deviceStarts = Hold(starts, 0, checked(batch * (long)sizeof(long)), nameof(starts));
        using Lease target = Hold(output, 0, checked(batch * block), nameof(output));
        if (batch == 0) return;
        if (block == 0)
        {
            // Nothing to copy, so no launch, but the starts still have to obey the rule.
            CheckStartsOnHost(starts, batch, window, frameCount);
            return;
        }
        int chunks = WindowGrid.Chunks(block, rowBytes, batch, ResidentThreads);
        GatherFlagged("gather_windows", At(source, 0), At(deviceStarts, 0), At(target, 0), frameCount, rowBytes, window, batch, chunks, starts);
    }

    public override void GatherWindows(DeviceBuffer frames, DType from, long rowElements, ReadOnlySpan<long> starts, int window, DeviceBuffer output, DType to)
    {
        long elements = checked(window * rowElements);
        string name = GatherConvertKernel(from, to);
        using Lease source = Hold(frames, 0, frames.ByteCount, nameof(frames));
        using Lease target = Hold(output, 0, checked(starts.Length * elements * to.SizeOf()), nameof(output));
        if (starts.IsEmpty || elements == 0) return;
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(WindowsSource, name);
        int chunks = WindowGrid.ChunksForUnits(elements, starts.Length, ResidentThreads);
        lock (_uploadLock)
        {
            ulong deviceStarts = Upload(work.Context, starts);
            // As the copying gather: the real frame count, so the kernel would clamp rather than read out of bounds.
            LaunchGather(work, kernel, name, At(source, 0), deviceStarts, At(target, 0), frames.ByteCount / (rowElements * from.SizeOf()),
                rowElements, window, starts.Length, chunks, _sinkFlag);
        }
    }

    public override void GatherWindows(DeviceBuffer frames, DType from, long frameCount, long rowElements, DeviceBuffer starts, int batch, int window, DeviceBuffer output, DType to)
    {
        long elements = checked(window * rowElements);
        string name = GatherConvertKernel(from, to);
        using Lease source = Hold(frames, 0, checked(frameCount * rowElements * from.SizeOf()), nameof(frames));
        using Lease deviceStarts = Hold(starts, 0, checked(batch * (long)sizeof(long)), nameof(starts));
        using Lease target = Hold(output, 0, checked(batch * elements * to.SizeOf()), nameof(output));
        if (batch == 0) return;
        if (elements == 0)
        {
            CheckStartsOnHost(starts, batch, window, frameCount);
            return;
        }
        int chunks = WindowGrid.ChunksForUnits(elements, batch, ResidentThreads);
        GatherFlagged(name, At(source, 0), At(deviceStarts, 0), At(target, 0), frameCount, rowElements, window, batch, chunks, starts);
    }

    /// <summary>
    /// Launches a gather kernel (<c>gather_windows</c> or a gather-convert: same arguments, <paramref name="row"/> in
    /// bytes or elements) on device starts with the flag reset before and read back after, then throws for a bad start.
    /// A bad start is clamped into range by the kernel and gathered (clamp-and-flag): the output is fully defined
    /// even when this throws. The caller holds the leases behind the three addresses.
    /// </summary>
    private void GatherFlagged(string name, ulong frames, ulong starts, ulong output, long frameCount, long row, int window, int batch, int chunks,
        DeviceBuffer startsBuffer)
    {
        int bad = NoBadStart;
        using (Work work = Begin())
        {
            IntPtr kernel = _kernels.Function(WindowsSource, name);
            lock (_flagLock)
            {
                IntPtr stream = work.Context.Stream;
                _driver.Check(_driver.cuMemsetD32Async(_badFlag, NoBadStart, 1, stream), "cuMemsetD32Async");
                LaunchGather(work, kernel, name, frames, starts, output, frameCount, row, window, batch, chunks, _badFlag);
                _driver.Check(_driver.cuMemcpyDtoHAsync(&bad, _badFlag, sizeof(int), stream), "cuMemcpyDtoHAsync_v2");
                work.Context.Synchronize();
            }
        }
        if (bad != NoBadStart) throw BadDeviceStart(bad, ReadStart(startsBuffer, bad), window, frameCount);
    }

    public override void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output)
    {
        long block = checked(window * rowBytes);
        using Lease to = Hold(output, 0, checked(count * block), nameof(output));
        using Lease from = Hold(frames, 0, count == 0 ? 0 : checked(((count - 1) * stride + window) * rowBytes), nameof(frames));
        if (count == 0 || block == 0) return;
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(WindowsSource, "strided_windows");
        ulong source = At(from, 0);
        ulong target = At(to, 0);
        long first = 0;
        // strided_windows(frames, out, row_bytes, window, stride, first): a pointer to each argument's value, in order.
        void** arguments = stackalloc void*[6];
        arguments[0] = &source;
        arguments[1] = &target;
        arguments[2] = &rowBytes;
        arguments[3] = &window;
        arguments[4] = &stride;
        arguments[5] = &first;
        for (; first < count; first += WindowGrid.MaxStridedWindows)
        {
            long windows = Math.Min(WindowGrid.MaxStridedWindows, count - first);
            // cuLaunchKernel copies the values it points at before returning, so advancing first is safe.
            LaunchWindows(work, kernel, "strided_windows", windows, WindowGrid.Chunks(block, rowBytes, windows, ResidentThreads), arguments);
        }
    }

    /// <summary>
    /// A gather kernel's launch: gather_windows(frames, starts, out, frame_count, row_bytes, window, bad), or a
    /// gather-convert with row_elements for row_bytes; a pointer to each argument's value, in order.
    /// </summary>
    private void LaunchGather(in Work work, IntPtr kernel, string name, ulong frames, ulong starts, ulong output,
        long frameCount, long row, int window, long batch, int chunks, ulong bad)
    {
        void** arguments = stackalloc void*[7];
        arguments[0] = &frames;
        arguments[1] = &starts;
        arguments[2] = &output;
        arguments[3] = &frameCount;
        arguments[4] = &row;
        arguments[5] = &window;
        arguments[6] = &bad;
        LaunchWindows(work, kernel, name, batch, chunks, arguments);
    }

    /// <summary>One block row per window (x) and <paramref name="chunks"/> blocks along each (y).</summary>
    private void LaunchWindows(in Work work, IntPtr kernel, string name, long windows, int chunks, void** arguments) =>
        Launch(work, kernel, name, checked((uint)windows), (uint)chunks, WindowGrid.BlockThreads, arguments);

    /// <summary>
    /// Queues the copy of host starts to the device through a pinned block, and returns the device block. A pageable
    /// source could be read by the DMA after this returns (on systems that copy straight from pageable memory), so
    /// the span is first copied into pinned memory, which is reused only once the previous upload's event has fired.
    /// </summary>
    private ulong Upload(CudaContext context, ReadOnlySpan<long> starts)
    {
        long bytes = (long)starts.Length * sizeof(long);
        if (bytes > _uploadCapacity) GrowUpload(context, bytes);
        else if (_uploadPending) _driver.Check(_driver.cuEventSynchronize(_uploaded), "cuEventSynchronize");
        _uploadPending = false;
        starts.CopyTo(new Span<long>((void*)_uploadHost, starts.Length));
        _driver.Check(_driver.cuMemcpyHtoDAsync(_uploadDevice, (void*)_uploadHost, (nuint)bytes, context.Stream), "cuMemcpyHtoDAsync_v2");
        _driver.Check(_driver.cuEventRecord(_uploaded, context.Stream), "cuEventRecord");
        _uploadPending = true;
        return _uploadDevice;
    }

    /// <summary>Replaces both staging blocks by larger ones (doubling, so a growing batch reallocates O(log n) times).</summary>
    private void GrowUpload(CudaContext context, long bytes)
    {
        // Queued launches may still read the old device block: drain the stream before freeing it.
        context.Synchronize();
        _uploadPending = false;
        long capacity = Math.Max(bytes, Math.Max(2 * _uploadCapacity, 4096));
        FreeUpload();
        _driver.Check(_driver.cuMemAllocHost(out _uploadHost, (nuint)capacity), "cuMemAllocHost_v2");
        _driver.Check(_driver.cuMemAlloc(out _uploadDevice, (nuint)capacity), "cuMemAlloc_v2");
        _uploadCapacity = capacity;
    }

    private void FreeUpload()
    {
        _uploadCapacity = 0;
        if (_uploadHost != IntPtr.Zero) _driver.cuMemFreeHost(_uploadHost);
        if (_uploadDevice != 0) _driver.cuMemFree(_uploadDevice);
        _uploadHost = IntPtr.Zero;
        _uploadDevice = 0;
    }

    /// <summary>
    /// The scratch every window launch needs, made with the context: the bad-start flag (gather_windows takes a valid
    /// pointer on every launch) and the upload event; and the non-finite flag of <c>UnscaleAndCheck</c>. Raw allocations, not buffers, so the leak counters count only
    /// what callers allocated. Called once, with the new context current.
    /// </summary>
    private void CreateScratch()
    {
        try
        {
            _driver.Check(_driver.cuMemAlloc(out _badFlag, sizeof(int)), "cuMemAlloc_v2");
            _driver.Check(_driver.cuMemAlloc(out _sinkFlag, sizeof(int)), "cuMemAlloc_v2");
            _driver.Check(_driver.cuMemAlloc(out _nonFiniteFlag, sizeof(uint)), "cuMemAlloc_v2");
            _driver.Check(_driver.cuEventCreate(out _uploaded, CudaDriver.EventDisableTiming), "cuEventCreate");
        }
        catch
        {
            // No lock: the context is not published yet, so nothing else can reach the scratch.
            ReleaseScratch();
            throw;
        }
    }

    /// <summary>
    /// Frees all scratch; never throws. Called at dispose, once every <see cref="Work"/> has ended and the stream was
    /// drained, so no launch can still be using it; the locks only keep the fields' guard rule simple to state.
    /// </summary>
    private void FreeScratch()
    {
        lock (_uploadLock)
        lock (_flagLock)
        lock (_nonFiniteLock)
            ReleaseScratch();
    }

    private void ReleaseScratch()
    {
        FreeUpload();
        if (_badFlag != 0) _driver.cuMemFree(_badFlag);
        if (_sinkFlag != 0) _driver.cuMemFree(_sinkFlag);
        if (_nonFiniteFlag != 0) _driver.cuMemFree(_nonFiniteFlag);
        if (_uploaded != IntPtr.Zero) _driver.cuEventDestroy(_uploaded);
        _badFlag = 0;
        _sinkFlag = 0;
        _nonFiniteFlag = 0;
        _uploaded = IntPtr.Zero;
        _uploadPending = false;
    }

    private long ReadStart(DeviceBuffer starts, long index)
    {
        long value = 0;
        Read(starts, index * sizeof(long), new Span<byte>(&value, sizeof(long)));
        return value;
    }

    /// <summary>
    /// The start rule, applied on the host to starts read back in slices: a batch may hold 2^31 starts (16 GiB), too
    /// many to copy back at once.
    /// </summary>
    private void CheckStartsOnHost(DeviceBuffer starts, int batch, int window, long frameCount)
    {
        const int Slice = 1 << 16;
        var host = new long[Math.Min(batch, Slice)];
        for (long first = 0; first < batch; first += Slice)
        {
            Span<long> part = host.AsSpan(0, (int)Math.Min(Slice, batch - first));
            Read(starts, first * sizeof(long), MemoryMarshal.AsBytes(part));
            WindowRules.Starts(part, window, frameCount, first);
        }
    }
}
