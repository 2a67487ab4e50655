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

    /// <summary>Creates an event and records it at the current end of the stream; the context must be current.</summary>
    public static CudaEvent Record(CudaContext context)
    {
        CudaDriver driver = context.Driver;
        context.AddReference();
        IntPtr handle = IntPtr.Zero;
        try
        {
            driver.Check(driver.cuEventCreate(out handle, CudaDriver.EventDefault), "cuEventCreate");
            driver.Check(driver.cuEventRecord(handle, context.Stream), "cuEventRecord");
            return new CudaEvent(context, handle);
        }
        catch
        {
            if (handle != IntPtr.Zero) driver.cuEventDestroy(handle);
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
        CudaDriver driver = _context.Driver;
        using CudaContext.Current current = _context.Enter();
        driver.Check(driver.cuEventSynchronize(_event), "cuEventSynchronize");
        driver.Check(driver.cuEventElapsedTime(out float milliseconds, first._event, _event), "cuEventElapsedTime");
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
        if (_context.TryEnter(out CudaContext.Current current))
            using (current) _context.Driver.cuEventDestroy(handle);
        _context.Release();
    }
}
