using ILGPU;
using ILGPU.Runtime;
using NativeTensor.Runtime.Kernels;
using IlgpuDevice = ILGPU.Runtime.Device;

namespace NativeTensor.Runtime.Ilgpu;

/// <summary>
/// One ILGPU accelerator as a backend: the op families of <see cref="KernelBackend"/> run the C# kernels of
/// <c>kernels/ilgpu/</c>, found by the entry names of the same declarations OpenCL and CUDA launch. The accelerator is
/// created on first use (a discovered one) or is the caller's (<see cref="NativeTensor.Ilgpu.DeviceOf"/>, never disposed
/// here). Work goes to the accelerator's default stream, so a caller's own kernels on it are ordered with ours; host
/// transfers block; kernels and device copies stay queued until <see cref="Synchronize"/> or the next host read.
/// </summary>
internal sealed unsafe partial class IlgpuBackend : KernelBackend
{
    private readonly Lazy<Accelerator> _accelerator;
    private readonly Lazy<Accelerator>? _wide;
    private readonly bool _ownsAccelerator;
    private readonly IlgpuDevice _device;
    private volatile bool _disposed;

    /// <summary>A discovered device; <paramref name="spec"/> is its place among ILGPU's (<c>cuda:0</c>, <c>cpu</c>).</summary>
    public IlgpuBackend(IlgpuDevice device, string spec)
    {
        _device = device;
        Spec = $"ilgpu:{spec}";
        _ownsAccelerator = true;
        _accelerator = new Lazy<Accelerator>(() => device.CreateAccelerator(IlgpuRuntime.Context), LazyThreadSafetyMode.ExecutionAndPublication);
        if (device.AcceleratorType == AcceleratorType.CPU)
            _wide = new Lazy<Accelerator>(() => IlgpuRuntime.WideCpuDevice.CreateAccelerator(IlgpuRuntime.Context), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>A caller's accelerator, used as it is and never disposed here.</summary>
    public IlgpuBackend(Accelerator accelerator)
    {
        _device = accelerator.Device;
        Spec = "ilgpu:external";
        _ownsAccelerator = false;
        _accelerator = new Lazy<Accelerator>(accelerator);
    }

    /// <inheritdoc/>
    public override DeviceKind Kind => DeviceKind.Ilgpu;

    /// <summary>The spec <see cref="NativeTensor.Device.Get"/> takes for this device (<c>ilgpu:cuda:0</c>), or <c>ilgpu:external</c> for a caller's accelerator.</summary>
    public string Spec { get; }

    /// <inheritdoc/>
    public override string Name => _device.Name;

    /// <summary>Which of ILGPU's runtimes the accelerator belongs to.</summary>
    public AcceleratorType AcceleratorType => _device.AcceleratorType;

    /// <summary>The device's memory; for the emulated CPU (which reports no limit) the memory the GC sees.</summary>
    public override long TotalMemory => _device.AcceleratorType == AcceleratorType.CPU ? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes : _device.MemorySize;

    /// <summary>Whether the accelerator exists yet (a caller's always does).</summary>
    public bool IsCreated => _accelerator.IsValueCreated;

    /// <summary>Whether this backend wraps a caller's accelerator rather than one it created.</summary>
    public bool IsExternal => !_ownsAccelerator;

    /// <summary>The accelerator, created on first use.</summary>
    public Accelerator Accelerator
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                return _accelerator.Value;
            }
            catch (Exception e) when (e is not NativeTensorException)
            {
                throw IlgpuErrors.From(e, Name, "creating the accelerator");
            }
        }
    }

    private AcceleratorStream Stream => Accelerator.DefaultStream;

    /// <inheritdoc/>
    public override DeviceBuffer Allocate(long bytes) => IlgpuBuffer.Allocate(this, bytes);

    /// <inheritdoc/>
    public override void Write(DeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        IlgpuBuffer target = Own(destination, offset, source.Length, nameof(destination));
        if (source.IsEmpty) return;
        using var lease = new Lease(target);
        Accelerator accelerator = Accelerator;
        lock (_gate)
        {
            try
            {
                accelerator.Bind();
                // ILGPU wraps the host address in a buffer without pinning it: unpinned, a GC during the copy moves the
                // array and the copy reads freed memory (seen as zeros, and as a crash).
                fixed (byte* pinned = source)
                    target.View.SubView(offset, source.Length).CopyFromCPU(accelerator.DefaultStream, ref *pinned, source.Length);
            }
            catch (Exception e) when (e is not NativeTensorException)
            {
                throw IlgpuErrors.From(e, Name, "copying to the device");
            }
        }
    }

    /// <inheritdoc/>
    public override void Read(DeviceBuffer source, long offset, Span<byte> destination)
    {
        IlgpuBuffer from = Own(source, offset, destination.Length, nameof(source));
        if (destination.IsEmpty) return;
        using var lease = new Lease(from);
        Accelerator accelerator = Accelerator;
        lock (_gate)
        {
            try
            {
                accelerator.Bind();
                fixed (byte* pinned = destination)
                    from.View.SubView(offset, destination.Length).CopyToCPU(accelerator.DefaultStream, ref *pinned, destination.Length);
            }
            catch (Exception e) when (e is not NativeTensorException)
            {
                throw IlgpuErrors.From(e, Name, "copying to the host");
            }
        }
    }

    /// <inheritdoc/>
    public override void Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer destination, long destinationOffset, long bytes)
    {
        IlgpuBuffer from = Own(source, sourceOffset, bytes, nameof(source));
        IlgpuBuffer to = Own(destination, destinationOffset, bytes, nameof(destination));
        if (bytes == 0) return;
        using var fromLease = new Lease(from);
        using var toLease = new Lease(to);
        Run("copying on the device", () => from.View.SubView(sourceOffset, bytes).CopyTo(Stream, to.View.SubView(destinationOffset, bytes)));
    }

    /// <inheritdoc/>
    public override void Synchronize() => Run("synchronising", () => Stream.Synchronize());

    /// <inheritdoc/>
    public override DeviceEvent RecordEvent()
    {
        ProfilingMarker marker = default!;
        Run("recording a marker", () => marker = Stream.AddProfilingMarker());
        return new IlgpuEvent(marker, Name);
    }

    /// <summary>Throws unless <paramref name="buffer"/> is this backend's and the byte range lies inside it; returns it typed.</summary>
    private IlgpuBuffer Own(DeviceBuffer buffer, long offset, long bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (buffer is not IlgpuBuffer ilgpu || !ReferenceEquals(buffer.Owner, this))
            throw new ArgumentException($"{name} belongs to {Device.KindName(buffer.Owner.Kind)} '{buffer.Owner.Name}', not to {Spec} '{Name}'", name);
        if (offset < 0 || bytes < 0 || offset > buffer.ByteCount - bytes)
            throw new ArgumentOutOfRangeException(name, $"bytes [{offset}, {offset} + {bytes}) are outside the buffer's {buffer.ByteCount} bytes");
        return ilgpu;
    }

    /// <summary>
    /// Runs one ILGPU call with the accelerator bound to this thread (CUDA needs its context current) and under the
    /// backend's gate (the emulated CPU runs one launch at a time), turning its failures into <see cref="NativeTensorException"/>.
    /// </summary>
    private void Run(string what, Action action) => Run(Accelerator, what, action);

    private void Run(Accelerator accelerator, string what, Action action)
    {
        lock (_gate)
        {
            try
            {
                accelerator.Bind();
                action();
            }
            catch (Exception e) when (e is not NativeTensorException)
            {
                throw IlgpuErrors.From(e, Name, what);
            }
        }
    }

    private readonly object _gate = new();

    /// <summary>
    /// Serialises everything this backend asks of ILGPU: launches, copies, allocations, frees and kernel loads. ILGPU's
    /// emulated CPU runs one launch at a time, and its accelerators promise nothing about an allocation, free or load on
    /// another thread in the middle of a launch; one lock costs nothing next to an emulated launch.
    /// </summary>
    internal object Gate => _gate;

    /// <summary>The device's sizes and this process's share of them, for out-of-memory messages.</summary>
    internal string DescribeMemory() =>
        $"'{Name}' has {TotalMemory:N0} bytes; this process holds {LiveBytes:N0} bytes in {LiveBuffers} buffers on it";

    /// <summary>
    /// Drains the stream, then frees the scratch, the built kernels' launchers and, when this backend created it, the
    /// accelerator. Live tensors of a discovered device are disposed with the accelerator (ILGPU frees its children), so
    /// their own release later does nothing; the caller's accelerator and memory are left alone.
    /// </summary>
    public override void Dispose()
    {
        if (_disposed) return;
        if (_accelerator.IsValueCreated)
        {
            try
            {
                Stream.Synchronize();
            }
            catch (Exception)
            {
                // A failed kernel leaves the stream in error; disposing must still free what it can.
            }
            DisposeScratch();
        }
        _disposed = true;
        _built.Clear();
        if (_wide is { IsValueCreated: true }) _wide.Value.Dispose();
        if (_ownsAccelerator && _accelerator.IsValueCreated) _accelerator.Value.Dispose();
    }
}
