using System.Runtime.CompilerServices;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Cuda;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// The CUDA runtime on a real GPU: memory, transfers, the windows kernels against the reference, device-side
/// bounds checks, leak counters and error names. Skipped, with discovery's reason, where there is no CUDA device.
/// </summary>
public sealed class CudaRuntimeTests
{
    private static readonly Random Seeded = new(20260);

    [Fact]
    public void RoundTrip_KeepsEveryByte_AtEverySizeAndOffset()
    {
        Backend backend = Backends.Require(DeviceKind.Cuda).Backend;
        foreach (int size in new[] { 1, 3, 16, 255, 4096 + 7, (1 << 20) + 13 })
        {
            byte[] data = RandomBytes(size);
            using DeviceBuffer buffer = backend.Allocate(size + 64);
            backend.Write(buffer, 17, data);
            var back = new byte[size];
            backend.Read(buffer, 17, back);
            Assert.Equal(data, back);
        }
    }

    [Fact]
    public void Allocate_ZeroBytes_GivesValidDistinctBuffers()
    {
        Backend backend = Backends.Require(DeviceKind.Cuda).Backend;
        using DeviceBuffer first = backend.Allocate(0);
        using DeviceBuffer second = backend.Allocate(0);
        Assert.False(first.IsInvalid);
        Assert.NotEqual(first.DangerousGetHandle(), second.DangerousGetHandle());
        backend.Write(first, 0, ReadOnlySpan<byte>.Empty);
        backend.Read(first, 0, Span<byte>.Empty);
    }

    [Fact]
    public void Copy_OnTheDevice_IsOrderedWithLaterReads()
    {
        Backend backend = Backends.Require(DeviceKind.Cuda).Backend;
        byte[] data = RandomBytes(100_003);
        using DeviceBuffer source = backend.Allocate(data.Length);
        using DeviceBuffer target = backend.Allocate(data.Length + 5);
        backend.Write(source, 0, data);
        backend.Copy(source, 0, target, 5, data.Length);
        var back = new byte[data.Length];
        backend.Read(target, 5, back);
        Assert.Equal(data, back);
    }

    [Fact]
    public void Write_OutsideTheBuffer_IsRefused()
    {
        Backend backend = Backends.Require(DeviceKind.Cuda).Backend;
        using DeviceBuffer buffer = backend.Allocate(8);
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.Write(buffer, 4, new byte[5]));
    }

    public static TheoryData<DType, long[]> Shapes => new()
    {
        { DType.Float32, [500, 287] },   // 1148-byte rows: 4- and 8-byte units, the perf case
        { DType.Float32, [300, 4] },     // 16-byte rows: the 16-byte path
        { DType.Float16, [400, 3] },     // 6-byte rows: 2-byte units
        { DType.Int64, [1000] },         // one 8-byte element per frame
        { DType.BFloat16, [257, 5, 3] }, // rank 3, odd row
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Gather_HostAndDeviceStarts_MatchTheReference(DType dtype, long[] shape)
    {
        Device device = Backends.Require(DeviceKind.Cuda);
        const int Window = 30;
        byte[] frames = RandomBytes(checked((int)(Tensor.Product(shape) * dtype.SizeOf())));
        long rowBytes = frames.Length / shape[0];
        long[] starts = Enumerable.Range(0, 256).Select(_ => Seeded.NextInt64(shape[0] - Window + 1)).ToArray();
        starts[0] = 0;
        starts[^1] = shape[0] - Window;
        byte[] expected = WindowsReference.Gather(frames, shape[0], rowBytes, starts, Window);

        using Tensor onDevice = TestTensors.FromBytes(dtype, shape, device, frames);
        using Tensor fromHost = Windows.Gather(onDevice, starts, Window);
        Assert.Equal(expected, TestTensors.Bytes(fromHost));

        using Tensor startsOnHost = Tensor.FromArray(starts);
        using Tensor startsOnDevice = startsOnHost.To(device);
        using Tensor fromDevice = Windows.Gather(onDevice, startsOnDevice, Window);
        Assert.Equal(expected, TestTensors.Bytes(fromDevice));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Eager_MatchesTheReference(int stride)
    {
        Device device = Backends.Require(DeviceKind.Cuda);
        long[] shape = [333, 287];
        byte[] frames = RandomBytes(333 * 287 * 4);
        byte[] expected = WindowsReference.Eager(frames, 333, 287 * 4, 16, stride);
        using Tensor onDevice = TestTensors.FromBytes(DType.Float32, shape, device, frames);
        using Tensor windows = Windows.Eager(onDevice, 16, stride);
        Assert.Equal(expected, TestTensors.Bytes(windows));
    }

    [Fact]
    public void Gather_WritesNothingPastItsOutput()
    {
        Backend backend = Backends.Require(DeviceKind.Cuda).Backend;
        const int Window = 7, RowBytes = 12, Frames = 50, Guard = 4096;
        byte[] frames = RandomBytes(Frames * RowBytes);
        long[] starts = [0, 43, 5, 17];
        long outputBytes = starts.Length * Window * RowBytes;
        using DeviceBuffer source = backend.Allocate(frames.Length);
        using DeviceBuffer output = backend.Allocate(outputBytes + Guard);
        backend.Write(source, 0, frames);
        backend.Write(output, 0, Enumerable.Repeat((byte)0xFF, (int)outputBytes + Guard).ToArray());

        backend.GatherWindows(source, RowBytes, starts, Window, output);

        var back = new byte[outputBytes + Guard];
        backend.Read(output, 0, back);
        Assert.Equal(WindowsReference.Gather(frames, Frames, RowBytes, starts, Window), back[..(int)outputBytes]);
        Assert.All(back[(int)outputBytes..], b => Assert.Equal(0xFF, b));
    }

    [Theory]
    [InlineData(5, 471L, 470L)]  // 500 - 30 + 1: the first start whose window runs past the end; clamped to the last good one
    [InlineData(2, -1L, 0L)]
    public void Gather_BadDeviceStart_ThrowsNamingTheIndex_AndCopiesTheClampedWindow(int index, long value, long clamped)
    {
        Device device = Backends.Require(DeviceKind.Cuda);
        const int Frames = 500, Window = 30, RowBytes = 8;
        byte[] bytes = RandomBytes(Frames * RowBytes);
        using Tensor frames = TestTensors.FromBytes(DType.Int64, [Frames], device, bytes);
        long[] starts = [0, 1, 2, 3, 4, 5, 6, 7];
        starts[index] = value;
        using Tensor startsOnHost = Tensor.FromArray(starts);
        using Tensor startsOnDevice = startsOnHost.To(device);
        using Tensor output = TestTensors.Poisoned(DType.Int64, [starts.Length, Window], device);

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Gather(frames, startsOnDevice, Window, output));
        Assert.Contains($"starts[{index}] = {value}", error.Message);
        Assert.Contains("checked on the device", error.Message);

        // Clamp-and-flag (kernels/windows.cl): the bad window is the one at the clamped start, so no byte is left poisoned.
        starts[index] = clamped;
        TestTensors.BitExact(WindowsReference.Gather(bytes, Frames, RowBytes, starts, Window), TestTensors.Bytes(output), "clamped windows");
    }

    [Fact]
    public void Gather_ZeroByteRows_LaunchesNothingButStillChecksStarts()
    {
        Device device = Backends.Require(DeviceKind.Cuda);
        using Tensor frames = Tensor.Empty(DType.Float32, [10, 0], device);
        using Tensor good = Windows.Gather(frames, [0, 7], 3);
        Assert.Equal(new long[] { 2, 3, 0 }, good.Shape);
        using Tensor startsOnHost = Tensor.FromArray(new long[] { 0, 8 });
        using Tensor startsOnDevice = startsOnHost.To(device);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Gather(frames, startsOnDevice, 3));
        Assert.Contains("starts[1] = 8", error.Message);
    }

    [Fact]
    public void Launches_from_many_threads_match_the_reference_while_other_threads_dispose_their_tensors()
    {
        Device device = Backends.Require(DeviceKind.Cuda);
        const int Frames = 64, RowBytes = 33 * 4, Window = 5, Threads = 8;
        byte[] shared = RandomBytes(Frames * RowBytes);
        using Tensor source = TestTensors.FromBytes(DType.Float32, [Frames, RowBytes / 4], device, shared);
        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, thread =>
        {
            var random = new Random(100 + thread);
            for (int i = 0; i < 12; i++)
            {
                // Batches grow to 8192 starts, so the upload scratch grows while other threads launch from it.
                long[] starts = Enumerable.Range(0, 1 + random.Next(4 << i)).Select(_ => (long)random.Next(Frames - Window + 1)).ToArray();
                using Tensor hostStarts = Tensor.FromArray(starts);
                using Tensor deviceStarts = hostStarts.To(device);
                if (thread % 2 == 0)
                {
                    using Tensor windows = i % 2 == 0 ? Windows.Gather(source, starts, Window) : Windows.Gather(source, deviceStarts, Window);
                    TestTensors.BitExact(WindowsReference.Gather(shared, Frames, RowBytes, starts, Window), TestTensors.Bytes(windows), $"thread {thread}, batch {i}");
                }
                else
                {
                    // Tensors of its own, launched into and freed at the end of each round while the even threads are
                    // still queueing work: each free synchronises the stream that their launches share.
                    byte[] own = RandomBytes(Frames * RowBytes);
                    using Tensor frames = TestTensors.FromBytes(DType.Float32, [Frames, RowBytes / 4], device, own);
                    using Tensor gathered = Windows.Gather(frames, deviceStarts, Window);
                    using Tensor eager = Windows.Eager(frames, Window, 1 + i % 3);
                    TestTensors.BitExact(WindowsReference.Gather(own, Frames, RowBytes, starts, Window), TestTensors.Bytes(gathered), $"thread {thread}, batch {i}");
                    TestTensors.BitExact(WindowsReference.Eager(own, Frames, RowBytes, Window, 1 + i % 3), TestTensors.Bytes(eager), $"thread {thread}, eager {i}");
                }
            }
        });
    }

    [Fact]
    public async Task Dispose_waits_for_launches_in_flight_and_later_ones_are_refused()
    {
        Backends.Require(DeviceKind.Cuda);
        // A private backend, so disposing it cannot disturb tests running beside this one.
        var backend = (CudaBackend)CudaBackend.Discover().Found[0];
        var device = new Device(backend, 0);
        const int Frames = 300, RowBytes = 64, Window = 20, Threads = 6;
        byte[] bytes = RandomBytes(Frames * RowBytes);
        using Tensor frames = TestTensors.FromBytes(DType.Float32, [Frames, RowBytes / 4], device, bytes);
        long[] starts = Enumerable.Range(0, 1000).Select(i => (long)(i * 7 % (Frames - Window + 1))).ToArray();
        byte[] expected = WindowsReference.Gather(bytes, Frames, RowBytes, starts, Window);
        using var started = new CountdownEvent(Threads);
        var refused = new int[Threads];
        Task[] launchers = Enumerable.Range(0, Threads).Select(thread => Task.Run(() =>
        {
            started.Signal();
            for (int i = 0; ; i++)
            {
                try
                {
                    using Tensor windows = i % 2 == 0 ? Windows.Gather(frames, starts, Window) : Windows.Eager(frames, Window, 3);
                    byte[] want = i % 2 == 0 ? expected : WindowsReference.Eager(bytes, Frames, RowBytes, Window, 3);
                    TestTensors.BitExact(want, TestTensors.Bytes(windows), $"thread {thread}, launch {i}");
                }
                catch (ObjectDisposedException)
                {
                    refused[thread]++;
                    return;
                }
            }
        })).ToArray();
        started.Wait(TestContext.Current.CancellationToken);
        Thread.Sleep(50);
        backend.Dispose();
        await Task.WhenAll(launchers);
        Assert.All(refused, count => Assert.Equal(1, count));
    }

    [Fact]
    public void LeakCounters_ReturnToBaseline_AfterDispose_AndAfterTheBackendIsGone()
    {
        Backends.Require(DeviceKind.Cuda);
        // A private backend on the same device, so tests running beside this one cannot move its counters.
        var backend = (CudaBackend)CudaBackend.Discover().Found[0];
        var device = new Device(backend, 0);
        using (Tensor frames = TestTensors.FromBytes(DType.Float32, [200, 4], device, RandomBytes(200 * 16)))
        using (Tensor batch = Windows.Gather(frames, [3, 9, 150], 20))
        using (Tensor all = Windows.Eager(frames, 20, 7))
        {
            Assert.Equal(3, backend.LiveBuffers);
            Assert.Equal(200 * 16 + 3 * 20 * 16 + Windows.Count(200, 20, 7) * 20 * 16, backend.LiveBytes);
        }
        Assert.Equal(0, backend.LiveBuffers);
        Assert.Equal(0, backend.LiveBytes);

        DeviceBuffer survivor = backend.Allocate(1000);
        backend.Dispose();
        survivor.Dispose();   // frees into the context the buffer kept alive
        Assert.Equal(0, backend.LiveBuffers);
    }

    [Fact]
    public void Finaliser_FreesAnUndisposedBuffer()
    {
        Backends.Require(DeviceKind.Cuda);
        var backend = (CudaBackend)CudaBackend.Discover().Found[0];
        AllocateAndDrop(backend);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(0, backend.LiveBuffers);
        backend.Dispose();

        [MethodImpl(MethodImplOptions.NoInlining)]
        static void AllocateAndDrop(Backend owner) => owner.Allocate(4096);
    }

    [Fact]
    public void Allocate_TooMuch_SaysHowMuchWasAskedAndIsFree()
    {
        Backend backend = Backends.Require(DeviceKind.Cuda).Backend;
        long tooMuch = backend.TotalMemory * 4;
        var error = Assert.Throws<NativeTensorException>(() => backend.Allocate(tooMuch));
        Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", error.ErrorName);
        Assert.Contains($"{tooMuch:N0} bytes", error.Message);
        Assert.Contains("bytes free", error.Message);
    }

    [Fact]
    public void DriverErrors_CarryTheDriversName()
    {
        Backends.Require(DeviceKind.Cuda);
        CudaDriver driver = CudaDriver.System;
        Assert.Equal("CUDA_ERROR_ILLEGAL_ADDRESS", driver.ErrorName(700));
        Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", driver.ErrorName(2));
        var error = Assert.Throws<NativeTensorException>(() => driver.Check(driver.cuDeviceGet(out _, 1_000_000), "cuDeviceGet"));
        Assert.Equal("CUDA_ERROR_INVALID_DEVICE", error.ErrorName);
        Assert.Contains("CUDA_ERROR_INVALID_DEVICE", error.Message);
    }

    [Fact]
    public void CompileErrors_CarryNvrtcsNameAndLog()
    {
        var backend = (CudaBackend)Backends.Require(DeviceKind.Cuda).Backend;
        (Nvrtc nvrtc, Nvrtc.Target target) = Nvrtc.Select(backend.DriverVersion, backend.ComputeCapability, NativeLibraries.Nvrtc);
        var error = Assert.Throws<NativeTensorException>(() => nvrtc.Compile(
            "extern \"C\" __global__ void broken(int* x) { x[0] = no_such_name; }", "broken.cu", target));
        Assert.Equal("NVRTC_ERROR_COMPILATION", error.ErrorName);
        Assert.Contains("no_such_name", error.Message);
    }

    [Fact]
    public void Events_TimeQueuedWork()
    {
        Device device = Backends.Require(DeviceKind.Cuda);
        using Tensor frames = TestTensors.FromBytes(DType.Float32, [1000, 287], device, RandomBytes(1000 * 1148));
        using DeviceEvent start = device.Backend.RecordEvent();
        using Tensor windows = Windows.Eager(frames, 30);
        using DeviceEvent end = device.Backend.RecordEvent();
        Assert.InRange(end.MillisecondsSince(start), 0.0, 60_000.0);
    }

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        lock (Seeded) Seeded.NextBytes(bytes);
        return bytes;
    }
}
