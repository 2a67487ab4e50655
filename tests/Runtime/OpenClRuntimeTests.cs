using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Runtime.OpenCl;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// The OpenCL runtime itself: discovery, memory, transfers, errors, events, program builds, and one gather and one
/// strided launch per row-width path checked against <see cref="WindowsReference"/>. The windows parity suite
/// proper lives with the other backends' suites; this file proves the plumbing under it.
/// </summary>
public sealed class OpenClRuntimeTests
{
    private static Device OpenCl => Backends.Require(DeviceKind.OpenCl);

    private static OpenClBackend Backend => (OpenClBackend)OpenCl.Backend;

    [Fact]
    public void Discovery_finds_a_device_with_its_name_and_memory()
    {
        Device device = OpenCl;
        Assert.IsType<OpenClBackend>(device.Backend);
        Assert.False(string.IsNullOrWhiteSpace(device.Name));
        Assert.True(device.TotalMemory > 0);
        Assert.InRange(Backend.MaxAllocation, 1, device.TotalMemory);
        Assert.Same(device, Device.Get("opencl:0"));
        Assert.Null(Device.UnavailableReason(DeviceKind.OpenCl));
        Assert.Null(OpenClBackend.Discover().Reason);
    }

    [Fact]
    public void Write_read_and_copy_round_trip_at_offsets()
    {
        OpenClBackend backend = Backend;
        byte[] pattern = Bytes(1000, seed: 1);
        using DeviceBuffer a = backend.Allocate(1000), b = backend.Allocate(1000);
        backend.Write(a, 0, pattern);
        byte[] patch = Bytes(37, seed: 2);
        backend.Write(a, 501, patch);
        patch.CopyTo(pattern, 501);
        backend.Copy(a, 3, b, 17, 611);

        var whole = new byte[1000];
        backend.Read(a, 0, whole);
        Assert.Equal(pattern, whole);
        var copied = new byte[611];
        backend.Read(b, 17, copied);
        Assert.Equal(pattern.AsSpan(3, 611).ToArray(), copied);
        var tail = new byte[5];
        backend.Read(a, 995, tail);
        Assert.Equal(pattern.AsSpan(995).ToArray(), tail);

        Assert.Throws<ArgumentOutOfRangeException>(() => backend.Write(a, 990, new byte[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.Copy(a, 0, b, 500, 501));
    }

    [Fact]
    public void Zero_byte_allocations_are_valid_and_distinct()
    {
        OpenClBackend backend = Backend;
        using DeviceBuffer a = backend.Allocate(0), b = backend.Allocate(0);
        Assert.False(a.IsInvalid);
        Assert.NotEqual(a.DangerousGetHandle(), b.DangerousGetHandle());
        Assert.Equal(0, a.ByteCount);
        backend.Write(a, 0, ReadOnlySpan<byte>.Empty);
        backend.Read(a, 0, Span<byte>.Empty);
        backend.Copy(a, 0, b, 0, 0);
    }

    [Fact]
    public void Allocation_past_the_device_limit_says_what_was_asked_and_what_the_device_has()
    {
        OpenClBackend backend = Backend;
        long asked = backend.MaxAllocation + 1;
        var e = Assert.Throws<NativeTensorException>(() => backend.Allocate(asked));
        Assert.Equal("CL_MEM_OBJECT_ALLOCATION_FAILURE", e.ErrorName);
        Assert.Contains(asked.ToString("N0"), e.Message);
        Assert.Contains(backend.TotalMemory.ToString("N0"), e.Message);
        Assert.Contains(backend.MaxAllocation.ToString("N0"), e.Message);
    }

    [Fact]
    public void Status_codes_map_to_their_OpenCL_names()
    {
        Assert.Equal("CL_OUT_OF_RESOURCES", OpenClStatus.Name(-5));
        Assert.Equal("CL_MEM_OBJECT_ALLOCATION_FAILURE", OpenClStatus.Name(-4));
        Assert.Equal("CL_BUILD_PROGRAM_FAILURE", OpenClStatus.Name(-11));
        Assert.Equal("CL_INVALID_KERNEL_ARGS", OpenClStatus.Name(-52));
        Assert.Equal("CL_MAX_SIZE_RESTRICTION_EXCEEDED", OpenClStatus.Name(-72));
        Assert.Equal("CL_PLATFORM_NOT_FOUND_KHR", OpenClStatus.Name(-1001));
        Assert.Equal("CL_UNKNOWN_ERROR(-9999)", OpenClStatus.Name(-9999));
        foreach (int code in Enumerable.Range(1, 19).Concat(Enumerable.Range(30, 43)))
            Assert.StartsWith("CL_", OpenClStatus.Name(-code));
        Assert.DoesNotContain(Enumerable.Range(1, 19).Concat(Enumerable.Range(30, 43)), code => OpenClStatus.Name(-code).Contains("UNKNOWN"));

        OpenClStatus.Check(0, "clFinish");
        var e = Assert.Throws<NativeTensorException>(() => OpenClStatus.Check(-52, "clEnqueueNDRangeKernel"));
        Assert.Equal("CL_INVALID_KERNEL_ARGS", e.ErrorName);
        Assert.Contains("clEnqueueNDRangeKernel", e.Message);
        Assert.Contains("CL_INVALID_KERNEL_ARGS", e.Message);
    }

    [Fact]
    public void A_broken_program_fails_with_the_build_log()
    {
        const string source = "__kernel void broken(__global int* x) { x[0] = undeclared_identifier_42; }";
        var e = Assert.Throws<NativeTensorException>(() => Backend.Program(source));
        Assert.Equal("CL_BUILD_PROGRAM_FAILURE", e.ErrorName);
        Assert.Contains("CL_BUILD_PROGRAM_FAILURE", e.Message);
        Assert.Contains("undeclared_identifier_42", e.Message);
    }

    [Fact]
    public void A_program_is_built_once_and_cached()
    {
        string source = KernelSources.Get("windows.cl");
        Assert.Same(Backend.Program(source), Backend.Program(source));
        Assert.Same(Backend.Program(source).Kernel("gather_windows"), Backend.Program(source).Kernel("gather_windows"));
        var e = Assert.Throws<NativeTensorException>(() => Backend.Program(source).Kernel("no_such_kernel"));
        Assert.Equal("CL_INVALID_KERNEL_NAME", e.ErrorName);
    }

    [Fact]
    public void Events_time_a_large_copy_on_the_device_clock()
    {
        OpenClBackend backend = Backend;
        const long bytes = 32L << 20;
        using DeviceBuffer a = backend.Allocate(bytes), b = backend.Allocate(bytes);
        backend.Copy(a, 0, b, 0, bytes);  // first touch commits the pages, outside the timed span
        backend.Synchronize();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using DeviceEvent start = backend.RecordEvent();
        backend.Copy(a, 0, b, 0, bytes);
        backend.Copy(b, 0, a, 0, bytes);
        using DeviceEvent stop = backend.RecordEvent();
        double elapsed = stop.MillisecondsSince(start);
        double wall = clock.Elapsed.TotalMilliseconds;
        Assert.InRange(elapsed, double.Epsilon, wall + 1);
        using DeviceEvent cpu = Device.Cpu.Backend.RecordEvent();
        Assert.Throws<ArgumentException>(() => stop.MillisecondsSince(cpu));
    }

    [Fact]
    public void Buffers_are_freed_by_dispose_and_by_the_finaliser()
    {
        _ = OpenCl;  // skips, or fails when required, before anything else
        // A backend of its own, so tests running in parallel on the shared device cannot move its counters.
        var backend = (OpenClBackend)OpenClBackend.Discover().Found[0];
        var device = new Device(backend, 0);
        try
        {
            Tensor kept = Tensor.Empty(DType.Float32, [1000], device);
            Assert.Equal((1, 4000), (backend.LiveBuffers, backend.LiveBytes));
            Tensor.Empty(DType.Int64, [0], device).Dispose();
            kept.Dispose();
            kept.Dispose();
            Assert.Equal((0, 0), (backend.LiveBuffers, backend.LiveBytes));

            AllocateAndDrop(device, 5);
            Assert.Equal(5, backend.LiveBuffers);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.Equal((0, 0), (backend.LiveBuffers, backend.LiveBytes));

            // A tensor may outlive its backend's context and queue: its cl_mem holds a reference on the context.
            using Tensor host = Tensor.FromArray(new[] { 1, 2, 3 });
            Tensor survivor = host.To(device);
            backend.Dispose();
            survivor.Dispose();
            Assert.Equal(0, backend.LiveBuffers);
        }
        finally
        {
            backend.Dispose();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AllocateAndDrop(Device device, int count)
    {
        for (int i = 0; i < count; i++) _ = Tensor.Empty(DType.Float16, [123, i], device);
    }

    [Fact]
    public void Gather_and_strided_match_the_reference_for_unaligned_rows()
    {
        Check(Random(40 * 287, seed: 3, bits => BitConverter.Int32BitsToSingle(bits)), 287, 7);   // 1148-byte rows: 4-byte units
        Check(Random(100 * 287, seed: 4, bits => BitConverter.Int32BitsToSingle(bits)), 287, 64);  // 73 KB windows: several chunks
        Check(Random(50 * 3, seed: 5, bits => bits), 3, 7);                                        // 12-byte rows: 16-misaligned
        Check(Random(60 * 3, seed: 6, bits => BitConverter.Int16BitsToHalf((short)bits)), 3, 7);   // 6-byte rows: 2-byte units
        Check(Random(70, seed: 7, bits => BitConverter.Int16BitsToHalf((short)bits)), 1, 8);       // 16-byte windows, mixed unit widths

        static void Check<T>(T[] data, long row, int window) where T : unmanaged
        {
            long frames = data.Length / row;
            long[] starts = [0, frames - window, 3, 1, (frames - window) / 2, 0, frames - window, 11];
            byte[] expected = Bits(WindowsReference.Gather(data, frames, row, starts, window));
            using Tensor source = Tensor.FromArray(data, frames, row).To(OpenCl);
            using Tensor hostStarts = Windows.Gather(source, starts, window);
            Assert.Equal(expected, Bits(hostStarts.ToArray<T>()));

            using Tensor deviceStarts = Tensor.FromArray(starts).To(OpenCl);
            using Tensor output = Poisoned<T>([starts.Length, window, row]);
            Windows.Gather(source, deviceStarts, window, output);
            Assert.Equal(expected, Bits(output.ToArray<T>()));

            foreach (int stride in new[] { 1, 3 })
            {
                using Tensor eager = Windows.Eager(source, window, stride);
                Assert.Equal(Bits(WindowsReference.Eager(data, frames, row, window, stride)), Bits(eager.ToArray<T>()));
            }
        }
    }

    [Fact]
    public void Odd_byte_rows_copy_bytewise_and_stay_inside_their_output()
    {
        OpenClBackend backend = Backend;
        const int row = 3, frames = 41, window = 4, guard = 64;
        byte[] data = Bytes(frames * row, seed: 8);
        long[] starts = [37, 0, 5, 36, 1];
        using DeviceBuffer source = backend.Allocate(data.Length);
        backend.Write(source, 0, data);

        byte[] expected = WindowsReference.Gather(data, frames, row, starts, window);
        Assert.Equal(expected, RunGuarded(expected.Length, output => backend.GatherWindows(source, row, starts, window, output)));

        expected = WindowsReference.Eager(data, frames, row, window, 2);
        long count = Windows.Count(frames, window, 2);
        Assert.Equal(expected, RunGuarded(expected.Length, output => backend.StridedWindows(source, row, count, window, 2, output)));
        // Split into launches of 4 windows, as a count past 2^30 would be, and the result is the same.
        Assert.Equal(expected, RunGuarded(expected.Length, output => backend.StridedWindows(source, row, count, window, 2, output, windowsPerLaunch: 4)));

        byte[] RunGuarded(int bytes, Action<DeviceBuffer> launch)
        {
            using DeviceBuffer output = backend.Allocate(bytes + guard);
            backend.Write(output, 0, Enumerable.Repeat((byte)0xFF, bytes + guard).ToArray());
            launch(output);
            var result = new byte[bytes + guard];
            backend.Read(output, 0, result);
            Assert.All(result[bytes..], b => Assert.Equal(0xFF, b));
            return result[..bytes];
        }
    }

    [Fact]
    public void Launches_from_many_threads_share_kernels_and_scratch_safely()
    {
        const int frames = 64, row = 33, window = 5;
        float[] data = Random(frames * row, seed: 10, bits => (float)bits);
        using Tensor source = Tensor.FromArray(data, frames, row).To(OpenCl);
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, thread =>
        {
            var random = new Random(100 + thread);
            for (int i = 0; i < 12; i++)
            {
                // Batch sizes vary so the shared starts scratch grows while other threads are using it.
                long[] starts = Enumerable.Range(0, 1 + random.Next(8 << (i % 6))).Select(_ => (long)random.Next(frames - window + 1)).ToArray();
                using Tensor deviceStarts = Tensor.FromArray(starts).To(OpenCl);
                using Tensor windows = i % 2 == 0 ? Windows.Gather(source, starts, window) : Windows.Gather(source, deviceStarts, window);
                Assert.Equal(WindowsReference.Gather(data, frames, row, starts, window), windows.ToArray<float>());
            }
        });
    }

    [Fact]
    public void Bad_device_starts_throw_naming_the_first_bad_index()
    {
        using Tensor source = Tensor.FromArray(Random(30 * 5, seed: 9, bits => bits), 30, 5).To(OpenCl);
        using Tensor output = Poisoned<int>([6, 4, 5]);

        using Tensor negative = Tensor.FromArray(new long[] { 0, 26, 9, -1, 3, 27 }).To(OpenCl);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Gather(source, negative, 4, output));
        Assert.Equal("starts", e.ParamName);
        Assert.Contains("starts[3] = -1", e.Message);
        Assert.Contains("checked on the device", e.Message);

        using Tensor past = Tensor.FromArray(new long[] { 0, 26, 9, 2, 3, 27 }).To(OpenCl);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Gather(source, past, 4, output));
        Assert.Contains("starts[5] = 27: window 4 runs past frame count 30", e.Message);

        // The flag is reset per call: good starts right after a failure succeed.
        using Tensor good = Tensor.FromArray(new long[] { 0, 26, 9, 2, 3, 1 }).To(OpenCl);
        Windows.Gather(source, good, 4, output);
    }

    [Fact]
    public void Zero_byte_rows_launch_nothing_but_still_check_device_starts()
    {
        using Tensor source = Tensor.Empty(DType.Float32, [10, 0], OpenCl);
        using Tensor eager = Windows.Eager(source, 3);
        Assert.Equal([8L, 3, 0], eager.Shape);
        using Tensor starts = Tensor.FromArray(new long[] { 0, 7, 8 }).To(OpenCl);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Gather(source, starts, 3));
        Assert.Contains("starts[2] = 8", e.Message);
    }

    private static Tensor Poisoned<T>(long[] shape) where T : unmanaged
    {
        Tensor output = Tensor.Empty(DTypes.Of<T>(), shape, OpenCl);
        var poison = new T[output.ElementCount];
        MemoryMarshal.AsBytes(poison.AsSpan()).Fill(0xFF);
        output.CopyFrom<T>(poison);
        return output;
    }

    private static byte[] Bits<T>(T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static byte[] Bytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static T[] Random<T>(int count, int seed, Func<int, T> fromBits)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => fromBits(random.Next(int.MinValue, int.MaxValue))).ToArray();
    }
}
