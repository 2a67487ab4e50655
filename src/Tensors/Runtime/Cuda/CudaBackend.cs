using System.Text;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// One NVIDIA GPU through the CUDA driver API (<c>libcuda.so.1</c>), with kernels compiled at run time by NVRTC.
/// </summary>
/// <remarks>
/// <para>Nothing heavy happens at discovery: it reads names and attributes, which need no context. The primary
/// context and the stream are taken at the first allocation, copy or launch; NVRTC is loaded at the first kernel.</para>
/// <para>All work goes to one non-blocking stream, in order; a method returns as soon as its work is queued unless
/// host memory is involved (Write, Read, host starts) or a device-side check must be read back.</para>
/// <para>Two lifetimes meet at every enqueue. A buffer argument is held by a <see cref="Lease"/> from the moment its
/// pointer is taken until the enqueue has returned (its Free then drains the stream before freeing, so nothing queued
/// outlives it). The backend's own state (context, modules, scratch) is held by a <see cref="Work"/> from
/// <see cref="Begin"/>; <see cref="Dispose"/> waits for every Work to end before it tears that state down.</para>
/// </remarks>
internal sealed unsafe partial class CudaBackend : Backend
{
    private readonly int _device;
    private readonly object _contextLock = new();
    private readonly CudaKernels _kernels;
    private CudaContext? _context;
    private bool _disposed;    // guarded by _contextLock
    private int _inFlight;     // Works begun and not yet ended; guarded by _contextLock

    private CudaBackend(int device, string name, long totalMemory, int capability, long residentThreads)
    {
        _device = device;
        Name = name;
        TotalMemory = totalMemory;
        ComputeCapability = capability;
        ResidentThreads = residentThreads;
        _kernels = new CudaKernels(capability, DescribeDriver);
    }

    public override DeviceKind Kind => DeviceKind.Cuda;

    public override string Name { get; }

    public override long TotalMemory { get; }

    /// <summary>Compute capability as major * 10 + minor (90 for an H100), the <c>sm_XY</c> kernels are built for.</summary>
    public int ComputeCapability { get; }

    /// <summary>Threads the GPU holds at once: multiprocessors times resident threads per multiprocessor.</summary>
    public long ResidentThreads { get; }

    /// <summary>
    /// Every CUDA device, or none and the reason. Never throws: a machine without the driver, with a driver but no
    /// GPU, or with a broken install simply has no CUDA device.
    /// </summary>
    public static (IReadOnlyList<Backend> Found, string? Reason) Discover()
    {
        string library = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        try
        {
            NativeLibraries.EnsureRegistered();
            int initialised = CudaNative.cuInit(0);
            if (initialised != CudaNative.Success) return ([], $"cuInit failed: {CudaStatus.Name(initialised)}");
            CudaStatus.Check(CudaNative.cuDeviceGetCount(out int count), "cuDeviceGetCount");
            if (count == 0) return ([], "the NVIDIA driver reports no CUDA device");
            var found = new List<Backend>(count);
            for (int ordinal = 0; ordinal < count; ordinal++) found.Add(Query(ordinal));
            return (found, null);
        }
        catch (DllNotFoundException)
        {
            return ([], $"{library} not found (no NVIDIA driver)");
        }
        catch (EntryPointNotFoundException e)
        {
            return ([], $"{library} is too old for this backend: {e.Message}");
        }
        catch (Exception e)
        {
            return ([], $"CUDA discovery failed: {e.Message}");
        }
    }

    /// <summary>One device's name, memory and attributes, none of which needs a context.</summary>
    private static CudaBackend Query(int ordinal)
    {
        CudaStatus.Check(CudaNative.cuDeviceGet(out int device, ordinal), "cuDeviceGet");
        byte* name = stackalloc byte[256];
        CudaStatus.Check(CudaNative.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        CudaStatus.Check(CudaNative.cuDeviceTotalMem(out nuint total, device), "cuDeviceTotalMem_v2");
        int major = Attribute(device, CudaNative.AttributeComputeCapabilityMajor);
        int minor = Attribute(device, CudaNative.AttributeComputeCapabilityMinor);
        long resident = (long)Attribute(device, CudaNative.AttributeMultiprocessorCount)
            * Attribute(device, CudaNative.AttributeMaxThreadsPerMultiprocessor);
        string text = new((sbyte*)name, 0, IndexOfNul(name, 256), Encoding.UTF8);
        return new CudaBackend(device, text, (long)total, major * 10 + minor, resident);
    }

    private static int Attribute(int device, int attribute)
    {
        CudaStatus.Check(CudaNative.cuDeviceGetAttribute(out int value, attribute, device), $"cuDeviceGetAttribute({attribute})");
        return value;
    }

    private static int IndexOfNul(byte* text, int length)
    {
        int i = 0;
        while (i < length && text[i] != 0) i++;
        return i;
    }

    private static string DescribeDriver() =>
        CudaNative.cuDriverGetVersion(out int version) == CudaNative.Success ? $"CUDA {version / 1000}.{version % 1000 / 10}" : "an unknown CUDA version";

    /// <summary>
    /// Starts an operation that uses the stream, the modules or the scratch, with the context current on this thread.
    /// Until the returned <see cref="Work"/> is disposed, <see cref="Dispose"/> waits instead of unloading a module a
    /// launch holds a <c>CUfunction</c> of, freeing scratch it points at, or destroying the stream it queues on.
    /// A count rather than a reader/writer lock, so one operation may begin another with no lock-recursion rules.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The backend was disposed.</exception>
    private Work Begin()
    {
        lock (_contextLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _inFlight++;
        }
        try
        {
            return new Work(this, Enter());
        }
        catch
        {
            End();
            throw;
        }
    }

    private void End()
    {
        lock (_contextLock)
            if (--_inFlight == 0 && _disposed) Monitor.PulseAll(_contextLock);
    }

    /// <summary>An operation in flight, from <see cref="Begin"/> to Dispose; see there.</summary>
    private ref struct Work(CudaBackend backend, CudaContext context)
    {
        private CudaBackend? _backend = backend;

        public readonly CudaContext Context => context;

        public void Dispose()
        {
            _backend?.End();
            _backend = null;
        }
    }

    /// <summary>Makes the context current on this thread, retaining the primary context on first use; only <see cref="Begin"/> calls it.</summary>
    private CudaContext Enter()
    {
        CudaContext context = Volatile.Read(ref _context) ?? Open();
        context.MakeCurrent();
        return context;

        CudaContext Open()
        {
            lock (_contextLock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_context is not null) return _context;
                CudaContext created = CudaContext.Retain(_device);
                try
                {
                    CreateScratch();
                }
                catch
                {
                    created.Release();
                    throw;
                }
                Volatile.Write(ref _context, created);
                return created;
            }
        }
    }

    public override long? FreeMemory
    {
        get
        {
            using Work work = Begin();
            CudaStatus.Check(CudaNative.cuMemGetInfo(out nuint free, out _), "cuMemGetInfo_v2");
            return (long)free;
        }
    }

    public override DeviceBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        // Inside a Work, so the backend's context reference cannot drop to zero before the buffer takes its own.
        using Work work = Begin();
        return CudaBuffer.Allocate(this, work.Context, bytes);
    }

    public override void Write(DeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        using Lease target = Hold(destination, offset, source.Length, nameof(destination));
        if (source.IsEmpty) return;
        using Work work = Begin();
        // Async on our stream (a synchronous copy would run on the legacy stream, unordered with ours), then waited
        // for, because the caller may reuse its host memory as soon as this returns.
        fixed (byte* bytes = source)
        {
            CudaStatus.Check(CudaNative.cuMemcpyHtoDAsync(At(target, offset), bytes, (nuint)source.Length, work.Context.Stream), "cuMemcpyHtoDAsync_v2");
            work.Context.Synchronize();
        }
    }

    public override void Read(DeviceBuffer source, long offset, Span<byte> destination)
    {
        using Lease origin = Hold(source, offset, destination.Length, nameof(source));
        if (destination.IsEmpty) return;
        using Work work = Begin();
        fixed (byte* bytes = destination)
        {
            CudaStatus.Check(CudaNative.cuMemcpyDtoHAsync(bytes, At(origin, offset), (nuint)destination.Length, work.Context.Stream), "cuMemcpyDtoHAsync_v2");
            work.Context.Synchronize();
        }
    }

    public override void Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer destination, long destinationOffset, long bytes)
    {
        using Lease origin = Hold(source, sourceOffset, bytes, nameof(source));
        using Lease target = Hold(destination, destinationOffset, bytes, nameof(destination));
        if (bytes == 0) return;
        using Work work = Begin();
        CudaStatus.Check(CudaNative.cuMemcpyDtoDAsync(At(target, destinationOffset), At(origin, sourceOffset), (nuint)bytes, work.Context.Stream),
            "cuMemcpyDtoDAsync_v2");
    }

    public override void Synchronize()
    {
        using Work work = Begin();
        work.Context.Synchronize();
    }

    public override DeviceEvent RecordEvent()
    {
        using Work work = Begin();
        return CudaEvent.Record(work.Context);
    }

    /// <summary>
    /// Checks that <paramref name="buffer"/> is one of this device and that <paramref name="bytes"/> from
    /// <paramref name="offset"/> stay inside it (a driver copy or kernel given a bad range would corrupt other
    /// allocations rather than fail), then leases it. Take the lease before the pointer and keep it until the enqueue
    /// that uses the pointer has returned: a Dispose on another thread, or the finaliser of an unreachable tensor,
    /// would otherwise cuMemFree the memory while the copy or launch is being queued.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The buffer was already released.</exception>
    private Lease Hold(DeviceBuffer buffer, long offset, long bytes, string name)
    {
        if (buffer is not CudaBuffer cuda || !ReferenceEquals(cuda.Owner, this))
            throw new ArgumentException($"{name} is not a buffer of {Name}", name);
        if (offset < 0 || bytes < 0 || offset > cuda.ByteCount - bytes)
            throw new ArgumentOutOfRangeException(name, $"{name}: bytes [{offset}, {offset} + {bytes}) lie outside its {cuda.ByteCount} bytes");
        return new Lease(cuda);
    }

    /// <summary>The <c>CUdeviceptr</c> <paramref name="offset"/> bytes into a leased buffer (see <see cref="Hold"/>).</summary>
    private static ulong At(in Lease lease, long offset) => (ulong)(long)lease.Pointer + (ulong)offset;

    /// <summary>
    /// Unloads the kernels and frees the scratch memory; the context itself lives on until the last buffer is released.
    /// Operations already begun finish first (see <see cref="Begin"/>); later ones throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    public override void Dispose()
    {
        CudaContext? context;
        lock (_contextLock)
        {
            if (_disposed) return;
            _disposed = true;
            // Wait releases the lock, so a Work in flight can still end (or, opening the context, see _disposed and throw).
            while (_inFlight > 0) Monitor.Wait(_contextLock);
            context = _context;
            _context = null;
        }
        if (context is null) return;
        // Best effort, never throwing: a context in an error state frees what it can and is released all the same.
        if (context.TryMakeCurrent()) CudaNative.cuStreamSynchronize(context.Stream);
        _kernels.Dispose();
        FreeScratch();
        context.Release();
    }
}
