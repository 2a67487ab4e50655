namespace NativeTensor.Runtime.Cuda;

/// <summary>A timing <c>CUevent</c> recorded on the backend's stream, so elapsed times are the device's own clock.</summary>
internal sealed class CudaEvent : DeviceEvent
{
    private readonly CudaEventHandle _event;

    private CudaEvent(CudaEventHandle handle) => _event = handle;

    /// <summary>Creates an event and records it at the current end of the stream; the context must be current.</summary>
    public static CudaEvent Record(CudaContext context)
    {
        CudaEventHandle handle = CudaEventHandle.Create(context, CudaDriver.EventDefault);
        try
        {
            using var lease = new Lease(handle);
            context.Driver.Check(context.Driver.cuEventRecord(lease.Pointer, context.Stream), "cuEventRecord");
            return new CudaEvent(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException"><paramref name="start"/> is not an event of the same CUDA device.</exception>
    public override double MillisecondsSince(DeviceEvent start)
    {
        if (start is not CudaEvent first || first._event.Context != _event.Context)
            throw new ArgumentException("start must be an event recorded on the same CUDA device", nameof(start));
        ObjectDisposedException.ThrowIf(_event.IsClosed || first._event.IsClosed, this);
        CudaContext context = _event.Context;
        using var end = new Lease(_event);
        using var begin = new Lease(first._event);
        using CudaContext.Current current = context.Enter();
        context.Driver.Check(context.Driver.cuEventSynchronize(end.Pointer), "cuEventSynchronize");
        context.Driver.Check(context.Driver.cuEventElapsedTime(out float milliseconds, begin.Pointer, end.Pointer), "cuEventElapsedTime");
        return milliseconds;
    }

    /// <inheritdoc/>
    public override void Dispose() => _event.Dispose();
}
