using ILGPU.Runtime;

namespace NativeTensor.Runtime.Ilgpu;

/// <summary>A profiling marker on the backend's stream: a CUDA event, an OpenCL marker, or a timestamp on the emulated CPU.</summary>
internal sealed class IlgpuEvent(ProfilingMarker marker, string device) : DeviceEvent
{
    public ProfilingMarker Marker { get; } = marker;

    public override double MillisecondsSince(DeviceEvent start)
    {
        if (start is not IlgpuEvent from) throw new ArgumentException("the start event is not an ILGPU event", nameof(start));
        try
        {
            Marker.Synchronize();
            return Marker.MeasureFrom(from.Marker).TotalMilliseconds;
        }
        catch (Exception e) when (e is not ArgumentException)
        {
            throw IlgpuErrors.From(e, device, "timing between markers");
        }
    }

    public override void Dispose() => Marker.Dispose();
}
