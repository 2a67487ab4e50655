using System.Collections.Concurrent;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The primitives every op family of <see cref="KernelBackend"/> launches through, on CUDA: functions built from the
/// declarations by NVRTC, launched on the backend's stream inside a <see cref="Work"/> with every buffer argument leased;
/// stream-ordered fills; and host data staged through pinned memory without a synchronisation per batch.
/// </summary>
internal sealed unsafe partial class CudaBackend
{
    /// <summary>
    /// The fewest threads a block is given: a block of one warp caps a multiprocessor at half its resident threads,
    /// since it holds at most 32 blocks (64 on none yet).
    /// </summary>
    private const int MinBlockThreads = 64;

    private readonly ConcurrentDictionary<int, KernelLimits> _limits = new();

    /// <summary>
    /// Serialises the staging blocks and their event, which only this class touches (under the lock, so a handle read
    /// without a lease here cannot be disposed meanwhile); the base class also serialises <see cref="Stage"/> with its launch.
    /// </summary>
    private readonly object _uploadLock = new();

    private PinnedHostMemory? _uploadHost;
    private DeviceBuffer? _uploadDevice;
    private CudaEventHandle? _uploaded;
    private bool _uploadPending;

    /// <summary>
    /// Loads the kernel's module (NVRTC always builds with subnormals kept and correctly rounded divide and square root,
    /// so every <see cref="KernelNeeds"/> is met) and reads the most threads a block of the compiled function may have.
    /// </summary>
    protected override KernelLimits Prepare(DeviceKernel kernel)
    {
        if (_limits.TryGetValue(kernel.Slot, out KernelLimits known)) return known;
        KernelResources resources;
        using (Work work = Begin()) resources = _kernels.Resources(work.Context, kernel.Source, kernel.Entry);
        if (kernel.GroupThreads > resources.MaxThreadsPerBlock)
            throw new NativeTensorException(
                $"cuda: '{Name}' runs {kernel.Entry} in blocks of at most {resources.MaxThreadsPerBlock} threads, but it needs {kernel.GroupThreads}")
            { ErrorName = "CUDA_ERROR_INVALID_VALUE" };
        var limits = new KernelLimits(resources.MaxThreadsPerBlock, MinBlockThreads, ResidentThreads);
        return _limits.GetOrAdd(kernel.Slot, limits);
    }

    /// <summary>
    /// Leases every buffer argument, then queues the launch with a pointer to each argument's value in order (a scalar's
    /// value is kept 64 bits wide: on a little-endian host a pointer to it is a pointer to its narrow value too).
    /// cuLaunchKernel copies the values before it returns, so the leases end with this call.
    /// </summary>
    protected override void Enqueue(DeviceKernel kernel, in LaunchShape shape, ReadOnlySpan<KernelArgument> arguments)
    {
        const int Most = 16;
        if (arguments.Length > Most) throw new ArgumentOutOfRangeException(nameof(arguments), arguments.Length, $"at most {Most} kernel arguments");
        long* values = stackalloc long[Most];
        void** pointers = stackalloc void*[Most];
        Span<bool> held = stackalloc bool[arguments.Length];
        try
        {
            for (int i = 0; i < arguments.Length; i++)
            {
                if (arguments[i].Buffer is { } buffer)
                {
                    CheckOwner(buffer, kernel.Entry);
                    buffer.DangerousAddRef(ref held[i]);
                    values[i] = buffer.DangerousGetHandle();
                }
                else values[i] = arguments[i].Value;
                pointers[i] = values + i;
            }
            using Work work = Begin();
            IntPtr function = _kernels.Function(work.Context, kernel.Source, kernel.Entry);
            Launch(work, function, kernel.Entry, checked((uint)shape.GroupsX), checked((uint)shape.GroupsY), (uint)shape.GroupThreads, pointers);
        }
        finally
        {
            for (int i = 0; i < arguments.Length; i++)
                if (held[i]) arguments[i].Buffer!.DangerousRelease();
        }
    }

    protected override void Fill(DeviceBuffer buffer, uint value, long words)
    {
        using Lease target = Hold(buffer, 0, checked(words * sizeof(uint)), nameof(buffer));
        if (words == 0) return;
        using Work work = Begin();
        _driver.Check(_driver.cuMemsetD32Async(At(target, 0), value, (nuint)words, work.Context.Stream), "cuMemsetD32Async");
    }

    /// <summary>
    /// Queues the copy of host values to the device through a pinned block, and returns the device block. A pageable
    /// source could be read by the DMA after this returns (on systems that copy straight from pageable memory), so the
    /// span is first copied into pinned memory, which is reused only once the previous upload's event has fired.
    /// </summary>
    protected override DeviceBuffer Stage(ReadOnlySpan<long> values)
    {
        long bytes = (long)values.Length * sizeof(long);
        lock (_uploadLock)
        {
            using Work work = Begin();
            if (_uploadHost is null || bytes > _uploadHost.ByteCount) GrowUpload(work.Context, bytes);
            else if (_uploadPending) _driver.Check(_driver.cuEventSynchronize(_uploaded!.DangerousGetHandle()), "cuEventSynchronize");
            _uploadPending = false;
            using Lease host = new(_uploadHost!);
            using Lease device = new(_uploadDevice!);
            values.CopyTo(new Span<long>((void*)host.Pointer, values.Length));
            _driver.Check(_driver.cuMemcpyHtoDAsync(At(device, 0), (void*)host.Pointer, (nuint)bytes, work.Context.Stream), "cuMemcpyHtoDAsync_v2");
            _driver.Check(_driver.cuEventRecord(_uploaded!.DangerousGetHandle(), work.Context.Stream), "cuEventRecord");
            _uploadPending = true;
            return _uploadDevice!;
        }
    }

    /// <summary>Replaces both staging blocks by larger ones (doubling, so a growing batch reallocates O(log n) times).</summary>
    private void GrowUpload(CudaContext context, long bytes)
    {
        // Queued launches and copies may still use the old blocks: drain the stream before freeing the pinned one.
        context.Synchronize();
        _uploadPending = false;
        long capacity = Math.Max(bytes, Math.Max(2 * (_uploadHost?.ByteCount ?? 0), 4096));
        FreeUpload();
        _uploaded ??= CudaEventHandle.Create(context, CudaDriver.EventDisableTiming);
        _uploadHost = PinnedHostMemory.Allocate(context, capacity);
        _uploadDevice = CudaBuffer.Allocate(this, context, capacity, counted: false);
    }

    private void FreeUpload()
    {
        _uploadHost?.Dispose();
        _uploadDevice?.Dispose();
        _uploadHost = null;
        _uploadDevice = null;
    }

    protected override DeviceBuffer AllocateScratch(long bytes)
    {
        using Work work = Begin();
        return CudaBuffer.Allocate(this, work.Context, bytes, counted: false);
    }

    /// <summary>
    /// Frees the scratch and the staging blocks; never throws. Called at dispose with the context current, once every
    /// <see cref="Work"/> has ended and the stream was drained, so no launch can still be using them.
    /// </summary>
    private void FreeScratch()
    {
        DisposeScratch();
        lock (_uploadLock)
        {
            FreeUpload();
            _uploaded?.Dispose();
            _uploaded = null;
            _uploadPending = false;
        }
    }

    private void CheckOwner(DeviceBuffer buffer, string name)
    {
        if (buffer is not CudaBuffer cuda || !ReferenceEquals(cuda.Owner, this))
            throw new ArgumentException($"{name}: a buffer argument is not a buffer of {Name}", name);
    }
}
