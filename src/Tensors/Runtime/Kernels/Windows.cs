using System.Collections.Immutable;
using System.Runtime.InteropServices;
using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>The kernels of <c>kernels/windows.cl</c> (see its header for the math, the launch shape and the bounds).</summary>
internal static class WindowsKernels
{
    public const string Source = "windows.cl";

    /// <summary>gather_windows and the gather-converts share one signature; <c>row</c> is in bytes or elements.</summary>
    private static ImmutableArray<KernelParameter> GatherParameters(string row) =>
        [Buffer("frames"), Buffer("starts"), Buffer("out"), Int64("frame_count"), Int64(row), Int32("window"), Buffer("bad")];

    public static readonly DeviceKernel Gather = new(Source, "gather_windows", GatherParameters("row_bytes"));

    public static readonly DeviceKernel Strided = new(Source, "strided_windows",
        [Buffer("frames"), Buffer("out"), Int64("row_bytes"), Int32("window"), Int32("stride"), Int64("first")]);

    private static readonly DeviceKernel[] GatherConverts =
        [.. from pair in PrecisionKernels.Directions select new DeviceKernel(Source, $"gather_windows_{pair}", GatherParameters("row_elements"))];

    /// <summary>The fused gather-convert from <paramref name="from"/> to <paramref name="to"/>, two different floating-point dtypes.</summary>
    public static DeviceKernel GatherConvert(DType from, DType to) => GatherConverts[PrecisionKernels.Direction(from, to)];

    /// <summary>Every kernel of the family, for the tests that hold declarations against the source.</summary>
    public static IEnumerable<DeviceKernel> All => [Gather, Strided, .. GatherConverts];
}

/// <summary>
/// The windows op family on a kernel backend: one group column per window (see <see cref="LaunchShapes.Windows"/>).
/// Host starts were checked by the caller and are staged to the device; the kernel checks them again against what the
/// frames buffer really holds, so even an unchecked caller cannot make it read out of bounds. Device starts are checked
/// by the kernel (clamp-and-flag: a bad one is clamped into range and gathered, so every output byte is defined), and
/// the call throws afterwards naming the lowest bad index.
/// </summary>
internal abstract partial class KernelBackend
{
    /// <summary>The flag's value when no start was bad: the kernel keeps the lowest bad index by atomic min.</summary>
    private const int NoBadStart = int.MaxValue;

    /// <summary>Serialises staging host starts with the launch that reads them; guards <see cref="_sinkFlag"/>.</summary>
    private readonly object _stagingGate = new();

    /// <summary>Serialises the reset, launch and read-back of <see cref="_badFlag"/>.</summary>
    private readonly object _flagGate = new();

    /// <summary>The flag of host-start gathers, which nobody reads (they hold the staging gate, not the flag gate).</summary>
    private DeviceBuffer? _sinkFlag;

    private DeviceBuffer? _badFlag;

    public override void GatherWindows(DeviceBuffer frames, long rowBytes, ReadOnlySpan<long> starts, int window, DeviceBuffer output)
    {
        long block = checked(window * rowBytes);
        CheckRange(output, checked(starts.Length * block), nameof(output));
        CheckRange(frames, 0, nameof(frames));
        if (starts.IsEmpty || block == 0) return;
        DeviceKernel kernel = WindowsKernels.Gather;
        LaunchShape shape = LaunchShapes.Windows(Prepare(kernel), starts.Length, block / LaunchShapes.NarrowestUnit(rowBytes));
        GatherHostStarts(kernel, shape, frames, starts, output, frames.ByteCount / rowBytes, rowBytes, window);
    }

    public override void GatherWindows(DeviceBuffer frames, long frameCount, long rowBytes, DeviceBuffer starts, int batch, int window, DeviceBuffer output)
    {
        long block = checked(window * rowBytes);
        CheckRange(starts, checked(batch * (long)sizeof(long)), nameof(starts));
        CheckRange(output, checked(batch * block), nameof(output));
        CheckRange(frames, checked(frameCount * rowBytes), nameof(frames));
        if (batch == 0) return;
        if (block == 0)
        {
            // Nothing to copy, so no launch, but the starts still have to obey the rule.
            CheckStartsOnHost(starts, batch, window, frameCount);
            return;
        }
        DeviceKernel kernel = WindowsKernels.Gather;
        LaunchShape shape = LaunchShapes.Windows(Prepare(kernel), batch, block / LaunchShapes.NarrowestUnit(rowBytes));
        GatherDeviceStarts(kernel, shape, frames, starts, output, frameCount, rowBytes, window);
    }

    public override void GatherWindows(DeviceBuffer frames, DType from, long rowElements, ReadOnlySpan<long> starts, int window, DeviceBuffer output, DType to)
    {
        long elements = checked(window * rowElements);
        DeviceKernel kernel = WindowsKernels.GatherConvert(from, to);
        CheckRange(output, checked(starts.Length * elements * to.SizeOf()), nameof(output));
        CheckRange(frames, 0, nameof(frames));
        if (starts.IsEmpty || elements == 0) return;
        LaunchShape shape = LaunchShapes.Windows(Prepare(kernel), starts.Length, elements);
        GatherHostStarts(kernel, shape, frames, starts, output, frames.ByteCount / (rowElements * from.SizeOf()), rowElements, window);
    }

    public override void GatherWindows(DeviceBuffer frames, DType from, long frameCount, long rowElements, DeviceBuffer starts, int batch, int window,
        DeviceBuffer output, DType to)
    {
        long elements = checked(window * rowElements);
        DeviceKernel kernel = WindowsKernels.GatherConvert(from, to);
        CheckRange(starts, checked(batch * (long)sizeof(long)), nameof(starts));
        CheckRange(output, checked(batch * elements * to.SizeOf()), nameof(output));
        CheckRange(frames, checked(frameCount * rowElements * from.SizeOf()), nameof(frames));
        if (batch == 0) return;
        if (elements == 0)
        {
            CheckStartsOnHost(starts, batch, window, frameCount);
            return;
        }
        LaunchShape shape = LaunchShapes.Windows(Prepare(kernel), batch, elements);
        GatherDeviceStarts(kernel, shape, frames, starts, output, frameCount, rowElements, window);
    }

    public override void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output) =>
        StridedWindows(frames, rowBytes, count, window, stride, output, LaunchShapes.MaxStridedWindows);

    /// <summary>As the override, with the split size as a parameter so a test can make a small count take several launches.</summary>
    internal void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output, long windowsPerLaunch)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windowsPerLaunch);
        long block = checked(window * rowBytes);
        CheckRange(output, checked(count * block), nameof(output));
        CheckRange(frames, count == 0 ? 0 : checked(((count - 1) * stride + window) * rowBytes), nameof(frames));
        if (count == 0 || block == 0) return;
        DeviceKernel kernel = WindowsKernels.Strided;
        KernelLimits limits = Prepare(kernel);
        long units = block / LaunchShapes.NarrowestUnit(rowBytes);
        for (long first = 0; first < count; first += windowsPerLaunch)
        {
            long windows = Math.Min(windowsPerLaunch, count - first);
            Launch(kernel, LaunchShapes.Windows(limits, windows, units), frames, output, rowBytes, window, stride, first);
        }
    }

    /// <summary>
    /// Stages the host starts and launches a gather kernel on them, with the real frame count so the kernel would clamp
    /// rather than read out of bounds even if the host check had been skipped. Its flag goes to a sink nobody reads.
    /// </summary>
    private void GatherHostStarts(DeviceKernel kernel, in LaunchShape shape, DeviceBuffer frames, ReadOnlySpan<long> starts, DeviceBuffer output,
        long frameCount, long row, int window)
    {
        lock (_stagingGate)
        {
            DeviceBuffer sink = Scratch(ref _sinkFlag, sizeof(int));
            DeviceBuffer staged = Stage(starts);
            Launch(kernel, shape, frames, staged, output, frameCount, row, window, sink);
        }
    }

    /// <summary>Launches a gather kernel on device starts with the flag reset before and read back after, then throws for a bad start.</summary>
    private unsafe void GatherDeviceStarts(DeviceKernel kernel, in LaunchShape shape, DeviceBuffer frames, DeviceBuffer starts, DeviceBuffer output,
        long frameCount, long row, int window)
    {
        int bad = NoBadStart;
        lock (_flagGate)
        {
            DeviceBuffer flag = Scratch(ref _badFlag, sizeof(int));
            Fill(flag, NoBadStart, 1);
            Launch(kernel, shape, frames, starts, output, frameCount, row, window, flag);
            Read(flag, 0, new Span<byte>(&bad, sizeof(int)));
        }
        if (bad != NoBadStart) throw WindowStarts.BadOnDevice(bad, ReadStart(starts, bad), window, frameCount);
    }

    private unsafe long ReadStart(DeviceBuffer starts, long index)
    {
        long value = 0;
        Read(starts, index * sizeof(long), new Span<byte>(&value, sizeof(long)));
        return value;
    }

    /// <summary>The start rule, applied on the host to starts read back in slices: a batch may hold 2^31 starts (16 GiB).</summary>
    private void CheckStartsOnHost(DeviceBuffer starts, int batch, int window, long frameCount)
    {
        const int Slice = 1 << 16;
        var host = new long[Math.Min(batch, Slice)];
        for (long first = 0; first < batch; first += Slice)
        {
            Span<long> part = host.AsSpan(0, (int)Math.Min(Slice, batch - first));
            Read(starts, first * sizeof(long), MemoryMarshal.AsBytes(part));
            WindowStarts.Check(part, window, frameCount, first);
        }
    }
}
