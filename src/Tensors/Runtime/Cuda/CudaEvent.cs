namespace NativeTensor.Runtime.Cuda;

/// <summary>A timing <c>CUevent</c> recorded on the backend's stream, so elapsed times are the device's own clock.</summary>
internal sealed class CudaEvent : DeviceEvent
{
    private readonly CudaContext _context;
    private IntPtr _event;

    private CudaEvent(CudaContext context, IntPtr handle)
    {
        _context = context;
        _event = handle;
    }

    /// <summary>Creates an event and records it at the current end of the stream.</summary>
    public static CudaEvent Record(CudaContext context)
    {
        context.AddReference();
        IntPtr handle = IntPtr.Zero;
        try
        {
            context.MakeCurrent();
            CudaStatus.Check(CudaNative.cuEventCreate(out handle, CudaNative.EventDefault), "cuEventCreate");
            CudaStatus.Check(CudaNative.cuEventRecord(handle, context.Stream), "cuEventRecord");
            return new CudaEvent(context, handle);
        }
        catch
        {
            if (handle != IntPtr.Zero) CudaNative.cuEventDestroy(handle);
            context.Release();
            throw;
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException"><paramref name="start"/> is not an event of the same CUDA device.</exception>
    public override double MillisecondsSince(DeviceEvent start)
    {
        if (start is not CudaEvent first || first._context != _context)
            throw new ArgumentException("start must be an event recorded on the same CUDA device", nameof(start));
        ObjectDisposedException.ThrowIf(_event == IntPtr.Zero || first._event == IntPtr.Zero, this);
        _context.MakeCurrent();
        CudaStatus.Check(CudaNative.cuEventSynchronize(_event), "cuEventSynchronize");
        CudaStatus.Check(CudaNative.EventElapsedTime(out float milliseconds, first._event, _event), "cuEventElapsedTime");
        return milliseconds;
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        Destroy();
        GC.SuppressFinalize(this);
    }

    ~CudaEvent() => Destroy();

    private void Destroy()
    {
        IntPtr handle = Interlocked.Exchange(ref _event, IntPtr.Zero);
        if (handle == IntPtr.Zero) return;
        if (_context.TryMakeCurrent()) CudaNative.cuEventDestroy(handle);
        _context.Release();
    }
}
