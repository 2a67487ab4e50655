using NativeTensor.Cpu;

namespace NativeTensor.Runtime.Cpu;

/// <summary>
/// The host as a device: buffers are aligned native memory, kernels are the SIMD code in <c>Cpu/</c>, run over
/// all cores when the work is large enough to pay for the hand-off.
/// </summary>
/// <param name="simd">The widest vector the kernels may use; <see cref="SimdWidths.Best"/> outside tests.</param>
internal sealed unsafe class CpuBackend(SimdWidth simd) : Backend
{
    public CpuBackend() : this(SimdWidths.Best) { }

    public SimdWidth Simd { get; } = simd;

    public override DeviceKind Kind => DeviceKind.Cpu;

    public override string Name { get; } = $"{Environment.ProcessorCount} cores, {simd.Describe()}";

    public override long TotalMemory => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    public override DeviceBuffer Allocate(long bytes) => CpuBuffer.Allocate(this, bytes);

    public override void Write(DeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        fixed (byte* src = source) BlockCopy.Copy(src, At(destination, offset), source.Length, Simd);
    }

    public override void Read(DeviceBuffer source, long offset, Span<byte> destination)
    {
        fixed (byte* dst = destination) BlockCopy.Copy(At(source, offset), dst, destination.Length, Simd);
    }

    public override void Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer destination, long destinationOffset, long bytes) =>
        BlockCopy.Copy(At(source, sourceOffset), At(destination, destinationOffset), bytes, Simd);

    public override void Synchronize() { }

    public override DeviceEvent RecordEvent() => new CpuEvent(System.Diagnostics.Stopwatch.GetTimestamp());

    private sealed class CpuEvent(long timestamp) : DeviceEvent
    {
        public override double MillisecondsSince(DeviceEvent start) =>
            System.Diagnostics.Stopwatch.GetElapsedTime(((CpuEvent)start).Timestamp, Timestamp).TotalMilliseconds;

        private long Timestamp { get; } = timestamp;
    }

    public override void GatherWindows(DeviceBuffer frames, long rowBytes, ReadOnlySpan<long> starts, int window, DeviceBuffer output)
    {
        fixed (long* s = starts)
            WindowKernels.Gather(At(frames, 0), rowBytes, s, starts.Length, window, At(output, 0), Simd);
    }

    public override void GatherWindows(DeviceBuffer frames, long frameCount, long rowBytes, DeviceBuffer starts, int batch, int window, DeviceBuffer output)
    {
        // The public op checks CPU starts on the host before it gets here; keep the guarantee if a caller does not.
        var host = new ReadOnlySpan<long>(At(starts, 0), batch);
        WindowRules.Starts(host, window, frameCount);
        GatherWindows(frames, rowBytes, host, window, output);
    }

    public override void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output) =>
        WindowKernels.Strided(At(frames, 0), rowBytes, count, window, stride, At(output, 0), Simd);

    private static byte* At(DeviceBuffer buffer, long offset) => ((CpuBuffer)buffer).Pointer + offset;
}
