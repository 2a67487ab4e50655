using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>Every rule of <see cref="NativeTensor.Windows"/>'s arguments: the exception type, the words, and an untouched output.</summary>
public abstract partial class WindowsParityTests
{
    private const int N = 50, D = 7, W = 10;

    /// <summary>Frames [50, 7] of Float32 and a poisoned output [3, 10, 7], the setting of every rule below.</summary>
    private (Tensor Frames, Tensor Output) Setting(Device device)
    {
        Tensor frames = FromBytes(DType.Float32, [N, D], device, RandomBytes(new Random(5), N * D * 4));
        return (frames, Poisoned(DType.Float32, [3, W, D], device));
    }

    /// <summary>Runs <paramref name="call"/>, expects <typeparamref name="TException"/> whose message holds every fragment, and checks the output kept its poison.</summary>
    private void Refused<TException>(Func<Tensor, Tensor, object> call, params string[] fragments) where TException : Exception
    {
        Device device = Device;
        (Tensor frames, Tensor output) = Setting(device);
        using (frames)
        using (output)
        {
            var e = Assert.ThrowsAny<TException>(() => call(frames, output));
            Assert.IsAssignableFrom<TException>(e);
            foreach (string fragment in fragments) Assert.Contains(fragment, e.Message);
            Assert.True(Bytes(output).AsSpan().IndexOfAnyExcept(Poison) < 0, "a refused call wrote into the output");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void A_window_below_one_is_refused(int window) =>
        Refused<ArgumentOutOfRangeException>((f, o) => Windows.Gather(f, [0L, 1L, 2L], window, o), $"window = {window}", ">= 1");

    [Fact]
    public void A_window_longer_than_the_frames_is_refused() =>
        Refused<ArgumentOutOfRangeException>((f, o) => Windows.Gather(f, [0L, 1L, 2L], N + 1, o), $"window = {N + 1}", $"frame count {N}");

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void A_stride_below_one_is_refused(int stride) =>
        Refused<ArgumentOutOfRangeException>((f, _) => Windows.Eager(f, W, stride), $"stride = {stride}");

    [Fact]
    public void Eager_refuses_a_window_longer_than_the_frames() =>
        Refused<ArgumentOutOfRangeException>((f, _) => Windows.Eager(f, N + 1), $"window = {N + 1}", $"frame count {N}");

    [Fact]
    public void A_negative_start_is_refused_with_its_index() =>
        Refused<ArgumentOutOfRangeException>((f, o) => Windows.Gather(f, [0L, -1L, 2L], W, o), "starts[1] = -1", ">= 0");

    [Fact]
    public void A_start_whose_window_runs_past_the_frames_is_refused_with_its_index() =>
        Refused<ArgumentOutOfRangeException>((f, o) => Windows.Gather(f, [0L, N - W, N - W + 1], W, o),
            $"starts[2] = {N - W + 1}: window {W} runs past frame count {N}");

    [Fact]
    public void A_huge_start_cannot_overflow_past_the_check() =>
        Refused<ArgumentOutOfRangeException>((f, o) => Windows.Gather(f, [long.MaxValue, 0L, 0L], W, o), $"starts[0] = {long.MaxValue}");

    [Fact]
    public void Rank_zero_frames_are_refused()
    {
        using Tensor scalar = Tensor.Empty(DType.Float32, [], Device);
        var e = Assert.Throws<ArgumentException>(() => Windows.Gather(scalar, [0L], 1));
        Assert.Contains("rank 0", e.Message);
        Assert.Throws<ArgumentException>(() => Windows.Eager(scalar, 1));
    }

    [Theory]
    [InlineData("shape")]
    [InlineData("dtype")]
    [InlineData("device")]
    public void An_output_that_does_not_match_is_refused_and_left_untouched(string mismatch)
    {
        Device device = Device;
        Device other = device == Backends.CpuScalar ? NativeTensor.Device.Cpu : Backends.CpuScalar;
        (DType dtype, long[] shape, Device place, string fragment) = mismatch switch
        {
            "shape" => (DType.Float32, new long[] { 3, W, D + 1 }, device, $"[3, {W}, {D}]"),
            "dtype" => (DType.Int32, new long[] { 3, W, D }, device, "Int32"),
            _ => (DType.Float32, new long[] { 3, W, D }, other, "output is on"),
        };
        using Tensor frames = Tensor.Empty(DType.Float32, [N, D], device);
        using Tensor wrong = Poisoned(dtype, shape, place);
        var e = Assert.Throws<ArgumentException>(() => Windows.Gather(frames, [0L, 1L, 2L], W, wrong));
        Assert.Contains(fragment, e.Message);
        Assert.True(Bytes(wrong).AsSpan().IndexOfAnyExcept(Poison) < 0, "a refused call wrote into the output");
    }

    [Fact]
    public void Starts_of_the_wrong_dtype_rank_or_device_are_refused()
    {
        Device device = Device;
        Device other = device == Backends.CpuScalar ? NativeTensor.Device.Cpu : Backends.CpuScalar;
        using Tensor int32Starts = Tensor.Empty(DType.Int32, [3], device);
        using Tensor matrixStarts = Tensor.Empty(DType.Int64, [3, 1], device);
        using Tensor elsewhere = Tensor.Empty(DType.Int64, [3], other);
        Refused<ArgumentException>((f, o) => Windows.Gather(f, int32Starts, W, o), "Int32", "Int64");
        Refused<ArgumentException>((f, o) => Windows.Gather(f, matrixStarts, W, o), "rank 1");
        Refused<ArgumentException>((f, o) => Windows.Gather(f, elsewhere, W, o), "starts is on");
    }

    [Fact]
    public void Disposed_tensors_are_refused()
    {
        Device device = Device;
        Tensor disposedFrames = Tensor.Empty(DType.Float32, [N, D], device);
        disposedFrames.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Windows.Gather(disposedFrames, [0L], W));
        Assert.Throws<ObjectDisposedException>(() => Windows.Eager(disposedFrames, W));

        Tensor disposedOutput = Tensor.Empty(DType.Float32, [3, W, D], device);
        disposedOutput.Dispose();
        Tensor disposedStarts = Tensor.Empty(DType.Int64, [3], device);
        disposedStarts.Dispose();
        Refused<ObjectDisposedException>((f, _) => Windows.Gather(f, [0L, 1L, 2L], W, disposedOutput));
        Refused<ObjectDisposedException>((f, o) => Windows.Gather(f, disposedStarts, W, o));
    }

    [Fact]
    public void A_bad_device_start_is_reported_with_its_index_and_never_read_out_of_bounds()
    {
        Device device = Device;
        byte[] bytes = RandomBytes(new Random(5), N * D * 4);
        using Tensor frames = FromBytes(DType.Float32, [N, D], device, bytes);
        using Tensor output = Poisoned(DType.Float32, [3, W, D], device);
        using Tensor starts = OnDevice([3, N - W + 5, -2], device);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Gather(frames, starts, W, output));
        Assert.Contains($"starts[1] = {N - W + 5}", e.Message);
        byte[] after = Bytes(output);
        if (device.Kind == DeviceKind.Cpu)
            Assert.True(after.AsSpan().IndexOfAnyExcept(Poison) < 0, "the CPU wrote before refusing");
        else // the kernel clamped each bad start into range: every byte is a defined copy from inside frames
            BitExact(Expected(new WindowCase(DType.Float32, [N, D], W, 1, [3, N - W, 0], 0), bytes), after, "clamped windows");
    }
}
