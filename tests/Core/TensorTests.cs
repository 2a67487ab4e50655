namespace NativeTensor.Tests.Core;

public sealed class TensorTests
{
    [Fact]
    public void FromArray_keeps_shape_dtype_and_elements()
    {
        using Tensor t = Tensor.FromArray(new[] { 1f, 2f, 3f, 4f, 5f, 6f }, 2, 3);
        Assert.Equal(DType.Float32, t.DType);
        Assert.Equal(new long[] { 2, 3 }, t.Shape);
        Assert.Equal(6, t.ElementCount);
        Assert.Equal(24, t.ByteCount);
        Assert.Same(Device.Cpu, t.Device);
        Assert.Equal(new[] { 1f, 2f, 3f, 4f, 5f, 6f }, t.ToArray<float>());
        using Tensor vector = Tensor.FromArray(new long[] { 7, 8 });
        Assert.Equal(new long[] { 2 }, vector.Shape);
        Assert.Equal(DType.Int64, vector.DType);
    }

    [Fact]
    public void Every_dtype_round_trips_through_every_device()
    {
        foreach (Device device in Device.Available)
        {
            RoundTrip(new[] { 1.5f, float.NaN, -0f }, device);
            RoundTrip(new[] { (Half)1.5f, Half.NaN, Half.NegativeZero }, device);
            RoundTrip(new[] { (BFloat16)1.5f, BFloat16.NaN }, device);
            RoundTrip(new[] { 1, int.MinValue, int.MaxValue }, device);
            RoundTrip(new[] { 1L, long.MinValue, long.MaxValue }, device);
        }
    }

    private static void RoundTrip<T>(T[] data, Device device) where T : unmanaged
    {
        using Tensor host = Tensor.FromArray(data);
        using Tensor there = host.To(device);
        using Tensor back = there.To(Device.Cpu);
        Assert.Equal(data, back.ToArray<T>());
        var copied = new T[data.Length];
        there.CopyTo<T>(copied);
        Assert.Equal(data, copied);
    }

    [Fact]
    public void Shapes_and_element_types_that_do_not_fit_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Tensor.FromArray(new float[6], 4, 2));
        Assert.Throws<ArgumentException>(() => Tensor.Empty(DType.Float32, [3, -1]));
        Assert.Throws<ArgumentException>(() => Tensor.Empty(DType.Float32, [long.MaxValue, 4]));
        Assert.Throws<ArgumentException>(() => Tensor.FromArray(new byte[3]));
        using Tensor t = Tensor.FromArray(new float[4]);
        Assert.Throws<ArgumentException>(() => t.ToArray<int>());
        Assert.Throws<ArgumentException>(() => t.CopyTo<float>(new float[5]));
        Assert.Throws<ArgumentException>(() => t.CopyFrom<float>(new float[3]));
    }

    [Fact]
    public void Rank_zero_and_empty_tensors_are_valid()
    {
        using Tensor scalar = Tensor.Empty(DType.Int32, []);
        Assert.Equal(0, scalar.Rank);
        Assert.Equal(1, scalar.ElementCount);
        using Tensor empty = Tensor.Empty(DType.Float32, [0, 287]);
        Assert.Equal(0, empty.ByteCount);
        Assert.Empty(empty.ToArray<float>());
    }

    [Fact]
    public void A_disposed_tensor_refuses_use_and_disposes_twice_quietly()
    {
        Tensor t = Tensor.FromArray(new float[4]);
        t.Dispose();
        t.Dispose();
        Assert.True(t.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => t.ToArray<float>());
        Assert.Throws<ObjectDisposedException>(() => t.To(Device.Cpu));
        Assert.Throws<ObjectDisposedException>(() => t.AsSpan<float>().Length);
    }

    [Fact]
    public void Host_views_of_tensors_past_two_GiB_are_refused_with_the_reason()
    {
        using Tensor big = Tensor.Empty(DType.Float32, [(1L << 29) + 1], Device.Cpu);   // 2 GiB + 4 bytes, never touched
        Assert.Contains("a span holds at most", Assert.Throws<InvalidOperationException>(() => big.AsSpan<float>()).Message);
        Assert.Contains("ToArray copies at most", Assert.Throws<InvalidOperationException>(() => big.ToArray<float>()).Message);
    }

    [Fact]
    public void A_cpu_tensor_past_the_address_space_is_refused_with_what_was_asked_and_what_is_there()
    {
        // 2^54 bytes: more than any 64-bit CPU's user address space (at most 2^52 with 5-level paging), so no
        // overcommit setting lets the allocation through.
        long elements = 1L << 52;
        var e = Assert.Throws<NativeTensorException>(() => Tensor.Empty(DType.Float32, [elements], Device.Cpu));
        Assert.Equal("ENOMEM", e.ErrorName);
        Assert.IsType<OutOfMemoryException>(e.InnerException);
        Assert.Contains($"allocating {elements * 4:N0} bytes", e.Message);
        Assert.Contains($"{GC.GetGCMemoryInfo().TotalAvailableMemoryBytes:N0} bytes the process may use", e.Message);
        if (OperatingSystem.IsLinux()) Assert.Contains("bytes available (MemAvailable)", e.Message);
    }

    [Fact]
    public void AsSpan_views_cpu_memory_in_place()
    {
        using Tensor t = Tensor.FromArray(new[] { 1, 2, 3 });
        t.AsSpan<int>()[1] = 20;
        Assert.Equal(new[] { 1, 20, 3 }, t.ToArray<int>());
    }
}
