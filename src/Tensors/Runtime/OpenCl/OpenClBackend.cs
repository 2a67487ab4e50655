using System.Collections.Concurrent;
using System.Text;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// One OpenCL device (GPU, accelerator or CPU, e.g. PoCL's) as a backend. Discovery only reads device properties;
/// the context and its single in-order, profiling-enabled queue are created on first use, so a process that never
/// touches a device (or a machine with eight of them) pays nothing for it. Transfers from and to the host block;
/// device-to-device copies and kernels stay queued until <see cref="Synchronize"/> or the next host read, which the
/// in-order queue orders after them. The op families are written once for every kernel backend (<c>Runtime/Kernels</c>);
/// this folder holds discovery, memory, transfers, events, the program cache and the primitives they launch through.
/// </summary>
internal sealed unsafe partial class OpenClBackend : KernelBackend
{
    /// <summary>
    /// OpenCL C 1.2 is what every current driver compiles (PoCL, NVIDIA, AMD, Intel). No <c>-cl-fast-relaxed-math</c>
    /// or <c>-cl-mad-enable</c>: kernels must round exactly as the IEEE reference does.
    /// </summary>
    public const string BuildOptions = "-cl-std=CL1.2";

    private const string LibraryMissing = "libOpenCL.so.1 not found";
    private const string NoPlatform = "no OpenCL platform (is an ICD such as pocl-opencl-icd installed?)";

    private readonly IntPtr _platform;
    private readonly IntPtr _device;
    private readonly Lazy<Session> _session;
    private readonly Dictionary<string, OpenClProgram> _programs = new(StringComparer.Ordinal);
    private volatile bool _disposed;

    private OpenClBackend(IntPtr platform, IntPtr device, string name, long totalMemory, long maxAllocation, long maxGroupSize, int addressBits,
        int computeUnits)
    {
        ComputeUnits = computeUnits;
        _platform = platform;
        _device = device;
        Name = name;
        TotalMemory = totalMemory;
        MaxAllocation = maxAllocation;
        MaxGroupSize = maxGroupSize;
        AddressBits = addressBits;
        _session = new Lazy<Session>(() => Session.Open(_platform, _device), LazyThreadSafetyMode.ExecutionAndPublication);
        _keepsSubnormals = new Lazy<bool>(() => (DeviceValue(_device, OpenClNative.DeviceSingleFpConfig, sizeof(ulong)) & OpenClNative.FpDenorm) != 0);
        _roundsDivideAndSqrtCorrectly = new Lazy<bool>(() =>
            (DeviceValue(_device, OpenClNative.DeviceSingleFpConfig, sizeof(ulong)) & OpenClNative.FpCorrectlyRoundedDivideSqrt) != 0);
    }

    /// <inheritdoc/>
    public override DeviceKind Kind => DeviceKind.OpenCl;

    /// <inheritdoc/>
    public override string Name { get; }

    /// <summary><c>CL_DEVICE_GLOBAL_MEM_SIZE</c>.</summary>
    public override long TotalMemory { get; }

    /// <summary><c>CL_DEVICE_MAX_MEM_ALLOC_SIZE</c>: the largest single buffer the device accepts.</summary>
    internal long MaxAllocation { get; }

    /// <summary><c>CL_DEVICE_MAX_WORK_GROUP_SIZE</c>.</summary>
    internal long MaxGroupSize { get; }

    /// <summary><c>CL_DEVICE_MAX_COMPUTE_UNITS</c>: cores on a CPU device, multiprocessors on a GPU.</summary>
    internal int ComputeUnits { get; }

    /// <summary><c>CL_DEVICE_ADDRESS_BITS</c>: a 32-bit device also caps each global work size at 2^32 - 1.</summary>
    internal int AddressBits { get; }

    /// <summary>
    /// <c>CL_FP_DENORM</c> in <c>CL_DEVICE_SINGLE_FP_CONFIG</c>: OpenCL 1.2 lets a device flush binary32 subnormals,
    /// and ops that multiply in floating point (UnscaleAndCheck) are bit-exact only where it does not.
    /// </summary>
    internal bool KeepsSubnormals => _keepsSubnormals.Value;

    private readonly Lazy<bool> _keepsSubnormals;

    /// <summary>
    /// <c>CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT</c> in <c>CL_DEVICE_SINGLE_FP_CONFIG</c>: only then may a program be built
    /// with <c>-cl-fp32-correctly-rounded-divide-sqrt</c>; without it OpenCL 1.2 allows binary32 divide 2.5 ulp and sqrt
    /// 3 ulp, and ops that divide or take roots (AdamWStep) are bit-exact only by the device's grace.
    /// </summary>
    internal bool RoundsDivideAndSqrtCorrectly => _roundsDivideAndSqrtCorrectly.Value;

    private readonly Lazy<bool> _roundsDivideAndSqrtCorrectly;

    private QueueHandle Queue => Open().Queue;

    /// <summary>
    /// Every device of every platform, one backend each. Never throws: a missing library, an empty ICD list or a
    /// broken platform becomes the reason that <see cref="Device.UnavailableReason"/> reports.
    /// </summary>
    public static (IReadOnlyList<Backend> Found, string? Reason) Discover()
    {
        try
        {
            return FindDevices();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return ([], e is DllNotFoundException ? LibraryMissing : $"{LibraryMissing} or too old: {e.Message}");
        }
        catch (Exception e)
        {
            return ([], $"OpenCL discovery failed: {e.Message}");
        }
    }

    private static (IReadOnlyList<Backend> Found, string? Reason) FindDevices()
    {
        uint platformCount;
        int status = OpenClNative.clGetPlatformIDs(0, null, &platformCount);
        if (status == OpenClStatus.PlatformNotFoundKhr || (status == OpenClStatus.Success && platformCount == 0)) return ([], NoPlatform);
        OpenClStatus.Check(status, "clGetPlatformIDs");
        var platforms = new IntPtr[platformCount];
        fixed (IntPtr* p = platforms) OpenClStatus.Check(OpenClNative.clGetPlatformIDs(platformCount, p, &platformCount), "clGetPlatformIDs");

        var found = new List<Backend>();
        var skipped = new List<string>();
        foreach (IntPtr platform in platforms.AsSpan(0, (int)platformCount))
        {
            string platformName = "?";
            try
            {
                platformName = PlatformText(platform, OpenClNative.PlatformName);
                foreach (IntPtr device in Devices(platform))
                {
                    string name = DeviceText(device, OpenClNative.DeviceName);
                    if (DeviceValue(device, OpenClNative.DeviceAvailable, sizeof(uint)) == 0)
                        skipped.Add($"'{name}' on '{platformName}' is not available");
                    else if (DeviceValue(device, OpenClNative.DeviceCompilerAvailable, sizeof(uint)) == 0)
                        skipped.Add($"'{name}' on '{platformName}' has no OpenCL C compiler");
                    else
                        found.Add(new OpenClBackend(platform, device, name,
                            (long)DeviceValue(device, OpenClNative.DeviceGlobalMemSize, sizeof(ulong)),
                            (long)DeviceValue(device, OpenClNative.DeviceMaxMemAllocSize, sizeof(ulong)),
                            (long)DeviceValue(device, OpenClNative.DeviceMaxWorkGroupSize, sizeof(nuint)),
                            (int)DeviceValue(device, OpenClNative.DeviceAddressBits, sizeof(uint)),
                            (int)DeviceValue(device, OpenClNative.DeviceMaxComputeUnits, sizeof(uint))));
                }
            }
            catch (NativeTensorException e)
            {
                skipped.Add($"platform '{platformName}': {e.Message}");
            }
        }
        if (found.Count > 0) return (found, null);
        return ([], skipped.Count > 0 ? string.Join("; ", skipped) : "no OpenCL device on any platform");
    }

    private static IntPtr[] Devices(IntPtr platform)
    {
        uint count;
        int status = OpenClNative.clGetDeviceIDs(platform, OpenClNative.DeviceTypeAll, 0, null, &count);
        if (status == OpenClStatus.DeviceNotFound) return [];
        OpenClStatus.Check(status, "clGetDeviceIDs");
        var devices = new IntPtr[count];
        fixed (IntPtr* d = devices) OpenClStatus.Check(OpenClNative.clGetDeviceIDs(platform, OpenClNative.DeviceTypeAll, count, d, null), "clGetDeviceIDs");
        return devices;
    }

    /// <summary>A <c>cl_uint</c>, <c>cl_ulong</c>, <c>cl_bool</c> or <c>size_t</c> property, widened.</summary>
    private static ulong DeviceValue(IntPtr device, uint param, int size)
    {
        ulong value = 0;
        OpenClStatus.Check(OpenClNative.clGetDeviceInfo(device, param, (nuint)size, &value, null), $"clGetDeviceInfo(0x{param:X4})");
        return value;
    }

    private static string DeviceText(IntPtr device, uint param) =>
        Text((size, value, returned) => OpenClNative.clGetDeviceInfo(device, param, size, value, returned), $"clGetDeviceInfo(0x{param:X4})");

    private static string PlatformText(IntPtr platform, uint param) =>
        Text((size, value, returned) => OpenClNative.clGetPlatformInfo(platform, param, size, value, returned), $"clGetPlatformInfo(0x{param:X4})");

    private delegate int InfoQuery(nuint size, void* value, nuint* returned);

    private static string Text(InfoQuery query, string call)
    {
        nuint size;
        OpenClStatus.Check(query(0, null, &size), call);
        var bytes = new byte[(int)size];
        fixed (byte* b = bytes) OpenClStatus.Check(query(size, b, null), call);
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0').Trim();
    }

    /// <inheritdoc/>
    public override DeviceBuffer Allocate(long bytes) => OpenClBuffer.Allocate(this, Open().Context, bytes);

    /// <inheritdoc/>
    public override void Write(DeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        CheckRange(destination, offset, source.Length, nameof(destination));
        if (source.IsEmpty) return;  // OpenCL 1.2 refuses a zero-byte transfer with CL_INVALID_VALUE.
        using var lease = new Lease(destination);
        fixed (byte* s = source)
            Check(OpenClNative.clEnqueueWriteBuffer(Queue, lease.Pointer, OpenClNative.True, (nuint)offset, (nuint)source.Length, s, 0, null, null),
                "clEnqueueWriteBuffer");
    }

    /// <inheritdoc/>
    public override void Read(DeviceBuffer source, long offset, Span<byte> destination)
    {
        CheckRange(source, offset, destination.Length, nameof(source));
        if (destination.IsEmpty) return;
        using var lease = new Lease(source);
        fixed (byte* d = destination)
            Check(OpenClNative.clEnqueueReadBuffer(Queue, lease.Pointer, OpenClNative.True, (nuint)offset, (nuint)destination.Length, d, 0, null, null),
                "clEnqueueReadBuffer");
    }

    /// <inheritdoc/>
    public override void Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer destination, long destinationOffset, long bytes)
    {
        CheckRange(source, sourceOffset, bytes, nameof(source));
        CheckRange(destination, destinationOffset, bytes, nameof(destination));
        if (bytes == 0) return;
        using var from = new Lease(source);
        using var to = new Lease(destination);
        Check(OpenClNative.clEnqueueCopyBuffer(Queue, from.Pointer, to.Pointer, (nuint)sourceOffset, (nuint)destinationOffset, (nuint)bytes, 0, null, null),
            "clEnqueueCopyBuffer");
    }

    /// <inheritdoc/>
    public override void Synchronize() => Check(OpenClNative.clFinish(Queue), "clFinish");

    /// <inheritdoc/>
    public override DeviceEvent RecordEvent()
    {
        IntPtr marker;
        Check(OpenClNative.clEnqueueMarkerWithWaitList(Queue, 0, null, &marker), "clEnqueueMarkerWithWaitList");
        return new OpenClEvent(EventHandle.Own(marker));
    }

    /// <summary>
    /// The program built from <paramref name="source"/> with <paramref name="options"/> for this device: compiled on
    /// first request, then cached by <see cref="KernelSources.Hash"/> until the backend is disposed. A build that
    /// fails is not cached, so the next request reports the same log instead of a stale exception.
    /// </summary>
    /// <exception cref="NativeTensorException"><c>CL_BUILD_PROGRAM_FAILURE</c> and the build log.</exception>
    internal OpenClProgram Program(string source, string options = BuildOptions)
    {
        string key = KernelSources.Hash(source, options);
        lock (_programs)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_programs.TryGetValue(key, out OpenClProgram? program))
            {
                program = OpenClProgram.Build(Open().Context, _device, source, options);
                _programs.Add(key, program);
            }
            return program;
        }
    }

    /// <summary>The sizes an out-of-memory message needs: what was asked, then <see cref="DescribeMemory"/>.</summary>
    internal string DescribeAllocation(long bytes) => $"asked for {bytes:N0} bytes; {DescribeMemory()}";

    /// <summary>
    /// The device's sizes and this process's share of them. OpenCL has no portable query for free memory, so the
    /// free figure is the device total less what this process's tensors hold on it: an upper bound.
    /// </summary>
    internal string DescribeMemory() =>
        $"'{Name}' has {TotalMemory:N0} bytes of global memory and takes at most {MaxAllocation:N0} bytes per buffer; " +
        $"this process holds {LiveBytes:N0} bytes in {LiveBuffers} buffers on it, leaving at most {Math.Max(0, TotalMemory - LiveBytes):N0} bytes free";

    /// <summary>A failed allocation: out-of-memory statuses carry the sizes, anything else only its name.</summary>
    internal NativeTensorException Failure(int status, string call, long bytes) =>
        status is OpenClStatus.MemObjectAllocationFailure or OpenClStatus.OutOfResources or OpenClStatus.OutOfHostMemory
            ? OpenClStatus.Error(status, call, DescribeAllocation(bytes))
            : OpenClStatus.Error(status, call);

    /// <summary>
    /// Like <see cref="OpenClStatus.Check"/>, but drivers commit buffer memory lazily, so an allocation failure can
    /// first surface at an enqueue; it then says what the device holds.
    /// </summary>
    private void Check(int status, string call)
    {
        if (status == OpenClStatus.MemObjectAllocationFailure)
            throw OpenClStatus.Error(status, call, $"the driver could not commit a buffer's memory at first use; {DescribeMemory()}");
        OpenClStatus.Check(status, call);
    }

    /// <summary>Buffers must be this backend's and the byte range inside them: OpenCL would refuse otherwise, but with a vaguer CL_INVALID_VALUE.</summary>
    private void CheckRange(DeviceBuffer buffer, long offset, long bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (buffer.Owner != this)
            throw new ArgumentException($"{name} belongs to {buffer.Owner.Kind} '{buffer.Owner.Name}', not to OpenCL '{Name}'", name);
        if (offset < 0 || bytes < 0 || offset > buffer.ByteCount - bytes)
            throw new ArgumentOutOfRangeException(name, $"bytes [{offset}, {offset} + {bytes}) are outside the buffer's {buffer.ByteCount} bytes");
    }

    private Session Open()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _session.Value;
    }

    /// <summary>Finishes queued work, then releases kernels, programs, scratch memory, the queue and the context. Live tensors keep their
    /// <c>cl_mem</c> (each holds a reference on the context), so they can still be disposed or finalised afterwards.</summary>
    public override void Dispose()
    {
        lock (_programs)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (OpenClProgram program in _programs.Values) program.Dispose();
            _programs.Clear();
        }
        if (_session.IsValueCreated)
        {
            _ = OpenClNative.clFinish(_session.Value.Queue);
            DisposeScratch();
            _session.Value.Queue.Dispose();
            _session.Value.Context.Dispose();
        }
    }

    /// <summary>The device's context and its one in-order queue, with profiling on so markers carry device timestamps.</summary>
    private sealed record Session(ContextHandle Context, QueueHandle Queue)
    {
        public static Session Open(IntPtr platform, IntPtr device)
        {
            int status;
            nint* properties = stackalloc nint[] { OpenClNative.ContextPlatform, platform, 0 };
            ContextHandle context = OpenClNative.clCreateContext(properties, 1, &device, IntPtr.Zero, IntPtr.Zero, &status);
            try
            {
                context.CheckCreated(status, "clCreateContext");
                QueueHandle queue = OpenClNative.clCreateCommandQueue(context, device, OpenClNative.QueueProfilingEnable, &status);
                queue.CheckCreated(status, "clCreateCommandQueue");
                return new Session(context, queue);
            }
            catch
            {
                context.Dispose();
                throw;
            }
        }
    }
}
