using System.Text;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// One NVIDIA GPU through the CUDA driver API (<c>libcuda.so.1</c>), with kernels compiled at run time by NVRTC.
/// </summary>
/// <remarks>
/// <para>Nothing heavy happens at discovery: it reads names and attributes, which need no context. The primary
/// context and the stream are taken at the first allocation, copy or launch; NVRTC is chosen (the newest the driver
/// can follow, see <see cref="Nvrtc.Select"/>) and loaded at the first kernel.</para>
/// <para>All work goes to one non-blocking stream, in order; a method returns as soon as its work is queued unless
/// host memory is involved (Write, Read, host starts) or a device-side check must be read back.</para>
/// <para>Two lifetimes meet at every enqueue. A buffer argument is held by a <see cref="Lease"/> from the moment its
/// pointer is taken until the enqueue has returned (its free is then queued behind the stream's work, see
/// <see cref="CudaContext"/>, so nothing queued outlives its memory). The backend's own state (context, modules,
/// scratch) is held by a <see cref="Work"/> from <see cref="Begin"/>; <see cref="Dispose"/> waits for every Work to
/// end before it tears that state down.</para>
/// <para>Each Work pushes the context and pops it at its end, so a thread that had another library's context current
/// (PyTorch, cuBLAS, a user's ILGPU) has it current again when the call returns.</para>
/// </remarks>
internal sealed unsafe partial class CudaBackend : KernelBackend
{
    /// <summary>The environment switch for <see cref="SynchronizeLaunches"/>.</summary>
    public const string SynchronizeVariable = "NATIVETENSOR_CUDA_SYNC";

    private readonly CudaDriver _driver;
    private readonly int _device;
    private readonly object _contextLock = new();
    private readonly CudaKernels _kernels;
    private CudaContext? _context;
    private bool _disposed;    // guarded by _contextLock
    private int _inFlight;     // Works begun and not yet ended; guarded by _contextLock

    private CudaBackend(CudaDriver driver, int device, string name, long totalMemory, int capability, long residentThreads, int driverVersion,
        LibrarySearch nvrtc)
    {
        _driver = driver;
        _device = device;
        Name = name;
        TotalMemory = totalMemory;
        ComputeCapability = capability;
        ResidentThreads = residentThreads;
        DriverVersion = driverVersion;
        SynchronizeLaunches = Environment.GetEnvironmentVariable(SynchronizeVariable) == "1";
        _kernels = new CudaKernels(driver, () => Nvrtc.Select(driverVersion, capability, nvrtc), DescribeDriver);
    }

    public override DeviceKind Kind => DeviceKind.Cuda;

    public override string Name { get; }

    public override long TotalMemory { get; }

    /// <summary>Compute capability as major * 10 + minor (90 for an H100), the <c>sm_XY</c> kernels are built for.</summary>
    public int ComputeCapability { get; }

    /// <summary>Threads the GPU holds at once: multiprocessors times resident threads per multiprocessor.</summary>
    public long ResidentThreads { get; }

    /// <summary>The driver's CUDA version as <c>cuDriverGetVersion</c> gives it: 1000 * major + 10 * minor (12040 for 12.4).</summary>
    public int DriverVersion { get; }

    /// <summary>
    /// Whether every launch is followed by a stream synchronisation whose failure is reported as that kernel's, instead
    /// of surfacing in a later, unrelated call. Slow; for debugging and for the sanitizer runs. Starts as
    /// <c>NATIVETENSOR_CUDA_SYNC=1</c> says.
    /// </summary>
    public bool SynchronizeLaunches { get; set; }

    /// <summary>
    /// Every CUDA device of the machine's driver, or none and the reason. Never throws: a machine without the driver,
    /// with a driver but no GPU, or with a broken install simply has no CUDA device.
    /// </summary>
    public static (IReadOnlyList<Backend> Found, string? Reason) Discover()
    {
        string library = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        CudaDriver driver;
        try
        {
            driver = CudaDriver.System;
        }
        catch (DllNotFoundException)
        {
            return ([], $"{library} not found (no NVIDIA driver; looked for {NativeLibraries.CudaDriver.Description})");
        }
        catch (EntryPointNotFoundException e)
        {
            return ([], $"{library} is too old for this backend: {e.Message}");
        }
        return Discover(driver, NativeLibraries.Nvrtc);
    }

    /// <summary>Every device <paramref name="driver"/> reports, building kernels with an NVRTC from <paramref name="nvrtc"/>; never throws.</summary>
    public static (IReadOnlyList<Backend> Found, string? Reason) Discover(CudaDriver driver, LibrarySearch nvrtc)
    {
        try
        {
            int initialised = driver.cuInit(0);
            if (initialised != CudaDriver.Success) return ([], $"cuInit failed: {driver.ErrorName(initialised)}");
            driver.Check(driver.cuDriverGetVersion(out int version), "cuDriverGetVersion");
            driver.Check(driver.cuDeviceGetCount(out int count), "cuDeviceGetCount");
            if (count == 0) return ([], "the NVIDIA driver reports no CUDA device");
            var found = new List<Backend>(count);
            for (int ordinal = 0; ordinal < count; ordinal++) found.Add(Query(driver, ordinal, version, nvrtc));
            return (found, null);
        }
        catch (Exception e)
        {
            return ([], $"CUDA discovery failed: {e.Message}");
        }
    }

    /// <summary>One device's name, memory and attributes, none of which needs a context.</summary>
    private static CudaBackend Query(CudaDriver driver, int ordinal, int driverVersion, LibrarySearch nvrtc)
    {
        driver.Check(driver.cuDeviceGet(out int device, ordinal), "cuDeviceGet");
        byte* name = stackalloc byte[256];
        driver.Check(driver.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        driver.Check(driver.cuDeviceTotalMem(out nuint total, device), "cuDeviceTotalMem_v2");
        int Attribute(int attribute)
        {
            driver.Check(driver.cuDeviceGetAttribute(out int value, attribute, device), $"cuDeviceGetAttribute({attribute})");
            return value;
        }
        int major = Attribute(CudaDriver.AttributeComputeCapabilityMajor);
        int minor = Attribute(CudaDriver.AttributeComputeCapabilityMinor);
        long resident = (long)Attribute(CudaDriver.AttributeMultiprocessorCount) * Attribute(CudaDriver.AttributeMaxThreadsPerMultiprocessor);
        string text = new((sbyte*)name, 0, IndexOfNul(name, 256), Encoding.UTF8);
        return new CudaBackend(driver, device, text, (long)total, major * 10 + minor, resident, driverVersion, nvrtc);
    }

    private static int IndexOfNul(byte* text, int length)
    {
        int i = 0;
        while (i < length && text[i] != 0) i++;
        return i;
    }

    private string DescribeDriver() => $"CUDA {DriverVersion / 1000}.{DriverVersion % 1000 / 10} ({_driver.Location})";

    /// <summary>
    /// Starts an operation that uses the stream, the modules or the scratch, with the context pushed current on this
    /// thread until the returned <see cref="Work"/> is disposed (which pops it, restoring the caller's context). Until
    /// then <see cref="Dispose"/> waits instead of unloading a module a launch holds a <c>CUfunction</c> of, freeing
    /// scratch it points at, or destroying the stream it queues on. A count rather than a reader/writer lock, so one
    /// operation may begin another with no lock-recursion rules. Frees deferred by buffers are done here.
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
            CudaContext context = Volatile.Read(ref _context) ?? Open();
            CudaContext.Current current = context.Enter();
            context.FreeDeferred();
            return new Work(this, context, current);
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
    private ref struct Work(CudaBackend backend, CudaContext context, CudaContext.Current current)
    {
        private CudaBackend? _backend = backend;
        private CudaContext.Current _current = current;

        public readonly CudaContext Context => context;

        public void Dispose()
        {
            _current.Dispose();
            _backend?.End();
            _backend = null;
        }
    }

    /// <summary>Retains the primary context, once; only <see cref="Begin"/> calls it.</summary>
    private CudaContext Open()
    {
        lock (_contextLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_context is not null) return _context;
            CudaContext created = CudaContext.Retain(_driver, _device);
            Volatile.Write(ref _context, created);
            return created;
        }
    }

    /// <summary>
    /// Queues <paramref name="kernel"/> on the stream in a grid of <paramref name="gridX"/> x <paramref name="gridY"/>
    /// blocks of <paramref name="block"/> threads, and with <see cref="SynchronizeLaunches"/> waits for it. The caller
    /// holds the <see cref="Work"/> and every lease behind <paramref name="arguments"/>, a pointer to each argument's
    /// value in the kernel's order (cuLaunchKernel copies the values before it returns).
    /// </summary>
    /// <exception cref="NativeTensorException">The launch was refused, or (synchronised) the kernel failed on the device.</exception>
    private void Launch(in Work work, IntPtr kernel, string name, uint gridX, uint gridY, uint block, void** arguments)
    {
        int status = _driver.cuLaunchKernel(kernel, gridX, gridY, 1, block, 1, 1, 0, work.Context.Stream, arguments, null);
        // The launch shape goes into the message only on failure: formatting it every batch would allocate on the hot path.
        if (status != CudaDriver.Success)
            throw _driver.Error(status, $"cuLaunchKernel({name}, grid {gridX} x {gridY}, block {block})");
        if (!SynchronizeLaunches) return;
        status = _driver.cuStreamSynchronize(work.Context.Stream);
        if (status != CudaDriver.Success)
            throw _driver.Error(status, $"{name} (grid {gridX} x {gridY}, block {block}), synchronised after its launch ({SynchronizeVariable}=1)");
    }

    /// <summary>What <paramref name="entry"/> of <paramref name="file"/> uses per thread and block, building its module if need be.</summary>
    public KernelResources KernelResources(string file, string entry)
    {
        using Work work = Begin();
        return _kernels.Resources(work.Context, file, entry);
    }

    public override long? FreeMemory
    {
        get
        {
            using Work work = Begin();
            _driver.Check(_driver.cuMemGetInfo(out nuint free, out _), "cuMemGetInfo_v2");
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
            _driver.Check(_driver.cuMemcpyHtoDAsync(At(target, offset), bytes, (nuint)source.Length, work.Context.Stream), "cuMemcpyHtoDAsync_v2");
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
            _driver.Check(_driver.cuMemcpyDtoHAsync(bytes, At(origin, offset), (nuint)destination.Length, work.Context.Stream), "cuMemcpyDtoHAsync_v2");
            work.Context.Synchronize();
        }
    }

    public override void Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer destination, long destinationOffset, long bytes)
    {
        using Lease origin = Hold(source, sourceOffset, bytes, nameof(source));
        using Lease target = Hold(destination, destinationOffset, bytes, nameof(destination));
        if (bytes == 0) return;
        using Work work = Begin();
        _driver.Check(_driver.cuMemcpyDtoDAsync(At(target, destinationOffset), At(origin, sourceOffset), (nuint)bytes, work.Context.Stream),
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
        // Without the context current the driver would refuse every call (and a context that cannot be pushed is gone
        // with its modules and memory), so only the release is left to do then.
        if (context.TryEnter(out CudaContext.Current current))
            using (current)
            {
                _driver.cuStreamSynchronize(context.Stream);
                _kernels.Dispose();
                FreeScratch();
            }
        context.Dispose();
    }
}
