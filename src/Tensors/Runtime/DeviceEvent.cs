namespace NativeTensor.Runtime;

/// <summary>
/// A point in a device's queue, for timing kernels on the device's own clock (OpenCL profiling markers,
/// CUDA events; a high-resolution timestamp on the CPU, whose work is synchronous).
/// </summary>
internal abstract class DeviceEvent : IDisposable
{
    /// <summary>Milliseconds from <paramref name="start"/> to this event, both from the same backend; waits for this event.</summary>
    public abstract double MillisecondsSince(DeviceEvent start);

    /// <summary>Releases the native event.</summary>
    public virtual void Dispose() { }
}
