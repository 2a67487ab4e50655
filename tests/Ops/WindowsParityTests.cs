using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What every backend must do for <see cref="NativeTensor.Windows"/>: equal the scalar reference bit for bit on
/// random shapes, dtypes, windows, strides and starts; write every output element and nothing past it; and free
/// what it allocates. Subclassed once per backend; a missing backend skips with its reason.
/// </summary>
public abstract partial class WindowsParityTests
{
    /// <summary>The device under test; throws a skip (or a failure, when required) if it is absent.</summary>
    protected abstract Device Device { get; }

    /// <summary>Random cases per property: fewer where each launch costs more.</summary>
    protected virtual int PropertyRuns => 200;

    private Config Runs => Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns);

    /// <summary>
    /// The shared <see cref="WindowCase"/> (perf validates with the same record): a new output on this device with the
    /// batch's shape, then the same batch into a reused poisoned output, both bit-exact with the reference.
    /// </summary>
    [Fact]
    public void Gather_with_host_starts_equals_the_reference()
    {
        Device device = Device;
        Prop.ForAll(WindowCase.Generator.ToArbitrary(), c => CaseAssert.Passes(c, device)).Check(Runs);
    }

    [Fact]
    public void Gather_with_device_starts_equals_the_host_starts_path()
    {
        Device device = Device;
        Prop.ForAll(WindowCase.Generator.ToArbitrary(), c => CaseAssert.Passes(c with { Op = WindowOp.GatherDeviceStarts }, device)).Check(Runs);
    }

    /// <summary>Eager equals the reference, its kernel writes every window of a poisoned output, and lazy equals eager's rows.</summary>
    [Fact]
    public void Gather_equals_the_matching_rows_of_eager()
    {
        Device device = Device;
        Prop.ForAll(WindowCase.Generator.ToArbitrary(), c => CaseAssert.Passes(c with { Op = WindowOp.Eager }, device)).Check(Runs);
    }

    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Int32)]
    [InlineData(DType.Int64)]
    public void Special_values_move_bit_exactly(DType dtype)
    {
        Device device = Device;
        CaseAssert.Passes(new WindowCase(dtype, [40, 287], 30, 1, [0, 10, 3, 9], 0, SpecialFrames: true), device);
    }

    [Fact]
    public void The_memory_scenario_shape_equals_the_reference_over_reused_outputs()
    {
        Device device = Device;
        var random = new Random(287);
        var c = new WindowCase(DType.Float32, [2000, 287], 30, 1, [], 0);
        byte[] bytes = RandomBytes(random, 2000 * 287 * 4);
        using Tensor frames = FromBytes(c.DType, c.FrameShape, device, bytes);
        using Tensor output = Poisoned(c.DType, [256, 30, 287], device);
        for (int batch = 0; batch < 3; batch++)
        {
            long[] starts = Enumerable.Range(0, 256).Select(_ => random.NextInt64(0, 2000 - 30 + 1)).ToArray();
            starts[^1] = 2000 - 30;
            Fill(output, Poison);
            Assert.Same(output, Windows.Gather(frames, starts, 30, output));
            BitExact(Expected(c with { Starts = starts }, bytes), Bytes(output), $"batch {batch}");
        }
    }

    /// <summary>Batches large enough to be split across cores, cut so a core's piece begins and ends inside a window.</summary>
    [Theory]
    [InlineData(255, 30, 287)]
    [InlineData(97, 31, 301)]
    [InlineData(3, 2000, 129)]
    public void Batches_split_across_cores_equal_the_reference(int batch, int window, int row)
    {
        Device device = Device;
        var random = new Random(batch * window);
        var c = new WindowCase(DType.Float32, [window + 3000, row], window, 1, [], 0);
        byte[] bytes = RandomBytes(random, c.FrameCount * row * 4);
        long[] starts = Enumerable.Range(0, batch).Select(_ => random.NextInt64(0, c.FrameCount - window + 1)).ToArray();
        using Tensor frames = FromBytes(c.DType, c.FrameShape, device, bytes);
        using Tensor output = Poisoned(c.DType, [batch, window, row], device);
        Windows.Gather(frames, starts, window, output);
        BitExact(Expected(c with { Starts = starts }, bytes), Bytes(output), $"batch {batch} x {window} x {row}");
    }

    /// <summary>Runs the kernel into a buffer longer than the output: the bytes after it must keep their poison.</summary>
    [Theory]
    [InlineData(1, 287 * 4)]
    [InlineData(7, 3 * 2)]
    [InlineData(30, 1148)]
    [InlineData(5, 1)]
    public void Kernels_write_nothing_past_the_output(int window, int rowBytes)
    {
        Device device = Device;
        var random = new Random(window * 1000 + rowBytes);
        const int frameCount = 97;
        byte[] frames = RandomBytes(random, frameCount * rowBytes);
        long[] starts = [0, frameCount - window, 13, 1, frameCount - window, 50];
        long outputBytes = (long)starts.Length * window * rowBytes;
        var backend = device.Backend;
        using var source = backend.Allocate(frames.Length);
        using var target = backend.Allocate(outputBytes + GuardBytes);
        using var deviceStarts = backend.Allocate(starts.Length * sizeof(long));
        backend.Write(source, 0, frames);
        backend.Write(deviceStarts, 0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(starts.AsSpan()));
        byte[] expected = WindowsReference.Gather(frames, frameCount, rowBytes, starts, window);

        foreach (string path in new[] { "host starts", "device starts", "strided" })
        {
            byte[] poison = Enumerable.Repeat(Poison, (int)(outputBytes + GuardBytes)).ToArray();
            backend.Write(target, 0, poison);
            if (path == "host starts") backend.GatherWindows(source, rowBytes, starts, window, target);
            else if (path == "device starts") backend.GatherWindows(source, frameCount, rowBytes, deviceStarts, starts.Length, window, target);
            else backend.StridedWindows(source, rowBytes, starts.Length, window, 3, target);
            var after = new byte[outputBytes + GuardBytes];
            backend.Read(target, 0, after);
            byte[] want = path == "strided"
                ? WindowsReference.Gather(frames, frameCount, rowBytes, Enumerable.Range(0, starts.Length).Select(s => 3L * s).ToArray(), window)
                : expected;
            BitExact(want, after[..(int)outputBytes], path);
            Assert.True(after.AsSpan((int)outputBytes).IndexOfAnyExcept(Poison) < 0, $"{path}: a kernel wrote into the guard region");
        }
    }

    [Fact]
    public void Windows_past_two_to_the_31_rows_address_with_64_bit_offsets()
    {
        Device device = Device;
        // 2^31 + 4096 one-element Float16 rows (4 GiB + 8 KiB): a start past 2^31 rows and a byte offset past 2^32
        // both overflow 32-bit arithmetic. Only the pages written here and the few read are ever touched.
        long frameCount = (1L << 31) + 4096;
        Tensor frames;
        try { frames = Tensor.Empty(DType.Float16, [frameCount], device); }
        catch (NativeTensorException e) { throw Xunit.Sdk.SkipException.ForSkip($"{device.Spec} cannot hold a 4 GiB buffer: {e.Message}"); }
        using (frames)
        {
            var random = new Random(31);
            byte[] tail = RandomBytes(random, 4096 * 2);
            long tailStart = frameCount - 4096;
            device.Backend.Write(frames.Buffer, tailStart * 2, tail);
            long[] starts = [tailStart, frameCount - 64, tailStart + 1000];
            using Tensor output = Windows.Gather(frames, starts, 64);
            byte[] expected = starts.SelectMany(s => tail.Skip((int)(s - tailStart) * 2).Take(64 * 2)).ToArray();
            BitExact(expected, Bytes(output), "gather past 2^31 rows");
            using Tensor deviceStarts = OnDevice(starts, device);
            using Tensor viaDevice = Windows.Gather(frames, deviceStarts, 64);
            BitExact(expected, Bytes(viaDevice), "device starts past 2^31 rows");
        }
    }

    [Fact]
    public void Disposing_tensors_frees_their_device_memory()
    {
        Device device = Device;
        var backend = device.Backend;
        long buffers = backend.LiveBuffers, bytes = backend.LiveBytes;
        using (Tensor frames = Tensor.Empty(DType.Float32, [100, 7], device))
        using (Tensor starts = OnDevice([0, 5, 90], device))
        {
            Windows.Gather(frames, [1L, 2L], 10).Dispose();
            Windows.Gather(frames, starts, 10).Dispose();
            Windows.Eager(frames, 10, 3).Dispose();
            Assert.True(backend.LiveBuffers >= buffers + 2);
        }
        Assert.Equal(buffers, backend.LiveBuffers);
        Assert.Equal(bytes, backend.LiveBytes);

        AllocateAndDrop(device);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(buffers, backend.LiveBuffers);
        Assert.Equal(bytes, backend.LiveBytes);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void AllocateAndDrop(Device device)
    {
        for (int i = 0; i < 8; i++) _ = Tensor.Empty(DType.Float32, [1024, 287], device);
    }

    /// <summary>An Int64 starts tensor on the device, without leaving a host tensor for the finaliser.</summary>
    internal static Tensor OnDevice(long[] starts, Device device) => CaseBytes.OnDevice(starts, device);

    internal static byte[] Expected(WindowCase c, byte[] frames) => c.Expected(frames);
}
