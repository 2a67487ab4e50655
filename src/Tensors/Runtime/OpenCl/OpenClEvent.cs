namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// A marker in the backend's in-order, profiling-enabled queue. The time between two markers is the difference of
/// their <c>CL_PROFILING_COMMAND_END</c> stamps: a marker completes when everything queued before it has completed,
/// so the later marker's end minus the earlier marker's end covers exactly the work queued between them.
/// </summary>
internal sealed unsafe class OpenClEvent(EventHandle handle) : DeviceEvent
{
    private readonly EventHandle _handle = handle;

    /// <inheritdoc/>
    /// <exception cref="ArgumentException"><paramref name="start"/> is not an OpenCL event.</exception>
    public override double MillisecondsSince(DeviceEvent start)
    {
        if (start is not OpenClEvent first)
            throw new ArgumentException($"start is a {start?.GetType().Name ?? "null"}: both events must come from the same OpenCL backend", nameof(start));
        using (var a = new Lease(first._handle))
        using (var b = new Lease(_handle))
        {
            IntPtr* events = stackalloc IntPtr[] { a.Pointer, b.Pointer };
            OpenClStatus.Check(OpenClNative.clWaitForEvents(2, events), "clWaitForEvents");
        }
        ulong from = first.End(), to = End();
        return to >= from ? (to - from) / 1e6 : -((from - to) / 1e6);
    }

    /// <summary>Device nanoseconds at which the command finished.</summary>
    private ulong End()
    {
        ulong nanoseconds;
        OpenClStatus.Check(OpenClNative.clGetEventProfilingInfo(_handle, OpenClNative.ProfilingCommandEnd, sizeof(ulong), &nanoseconds, null),
            "clGetEventProfilingInfo");
        return nanoseconds;
    }

    /// <inheritdoc/>
    public override void Dispose() => _handle.Dispose();
}
