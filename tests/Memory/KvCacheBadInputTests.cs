using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// Every rule of <see cref="KvCache"/> and <see cref="MultiLayerKvCache"/>: the exception type, and for a cache that
/// already holds positions, that a refused call changed neither its <see cref="KvCache.Length"/> nor any held byte.
/// </summary>
public sealed class KvCacheBadInputTests
{
    private const int Heads = 2, Capacity = 4, HeadDim = 3;

    [Theory]
    [InlineData(0, 4, 3)]
    [InlineData(2, 0, 3)]
    [InlineData(2, 4, 0)]
    [InlineData(-1, 4, 3)]
    public void Sizes_below_one_are_refused(int heads, int capacity, int headDim)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvCache(heads, capacity, headDim, DType.Float32));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MultiLayerKvCache(2, heads, capacity, headDim, DType.Float32));
    }

    [Theory]
    [InlineData(DType.Int32)]
    [InlineData(DType.Int64)]
    public void Integer_dtypes_are_refused(DType dtype)
    {
        var e = Assert.Throws<ArgumentException>(() => new KvCache(Heads, Capacity, HeadDim, dtype));
        Assert.Equal("dtype", e.ParamName);
    }

    [Fact]
    public void Byte_counts_past_64_bits_are_refused_before_anything_is_allocated()
    {
        long before = Device.Cpu.AllocatedBytes;
        Assert.Throws<ArgumentException>(() => new KvCache(int.MaxValue, int.MaxValue, int.MaxValue, DType.Float32));
        // One store fits 63 bits, two do not.
        Assert.Throws<ArgumentException>(() => new KvCache(1 << 30, 1 << 30, 2, DType.Float16));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MultiLayerKvCache(0, Heads, Capacity, HeadDim, DType.Float32));
        var e = Assert.Throws<ArgumentException>(() => new MultiLayerKvCache(int.MaxValue, 1 << 20, 1 << 20, 1 << 10, DType.Float32));
        Assert.Equal("layers", e.ParamName);
        Assert.Equal(before, Device.Cpu.AllocatedBytes);
    }

    [Fact]
    public void A_missing_or_empty_backing_directory_is_refused()
    {
        string missing = Path.Combine(Path.GetTempPath(), "kvcache-missing-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<DirectoryNotFoundException>(() => new KvCache(Heads, Capacity, HeadDim, DType.Float32, missing));
        Assert.Contains(missing, e.Message);
        Assert.False(Directory.Exists(missing));
        Assert.Throws<DirectoryNotFoundException>(() => new MultiLayerKvCache(2, Heads, Capacity, HeadDim, DType.Float32, missing));
        Assert.Throws<ArgumentException>(() => new KvCache(Heads, Capacity, HeadDim, DType.Float32, ""));
    }

    [Fact]
    public void A_backing_directory_with_a_device_other_than_the_cpu_is_refused()
    {
        Device openCl = Backends.Require(DeviceKind.OpenCl);
        long before = openCl.AllocatedBytes;
        var e = Assert.Throws<ArgumentException>(() => new KvCache(Heads, Capacity, HeadDim, DType.Float32, Path.GetTempPath(), device: openCl));
        Assert.Equal("device", e.ParamName);
        Assert.Equal(before, openCl.AllocatedBytes);
    }

    public static TheoryData<string, long[], long[], DType> BadBlocks() => new()
    {
        { "rank 2", [Heads, 3 * HeadDim], [Heads, 3 * HeadDim], DType.Float32 },
        { "rank 4", [Heads, 3, HeadDim, 1], [Heads, 3, HeadDim, 1], DType.Float32 },
        { "heads", [Heads + 1, 1, HeadDim], [Heads + 1, 1, HeadDim], DType.Float32 },
        { "headDim", [Heads, 1, HeadDim - 1], [Heads, 1, HeadDim - 1], DType.Float32 },
        { "values headDim", [Heads, 1, HeadDim], [Heads, 1, HeadDim + 1], DType.Float32 },
        { "t mismatch", [Heads, 1, HeadDim], [Heads, 2, HeadDim], DType.Float32 },
        { "int32", [Heads, 1, HeadDim], [Heads, 1, HeadDim], DType.Int32 },
        { "int64", [Heads, 1, HeadDim], [Heads, 1, HeadDim], DType.Int64 },
    };

    [Theory]
    [MemberData(nameof(BadBlocks))]
    public void A_bad_block_is_refused_and_nothing_is_written(string rule, long[] keyShape, long[] valueShape, DType dtype)
    {
        foreach (bool ring in new[] { false, true })
        {
            using KvCache cache = Filled(ring);
            byte[] held = Held(cache);
            using Tensor keys = Poisoned(dtype, keyShape, Device.Cpu);
            using Tensor values = Poisoned(dtype, valueShape, Device.Cpu);
            Assert.Throws<ArgumentException>(() => cache.Append(keys, values));
            Unchanged(cache, held, rule);
        }
    }

    [Fact]
    public void Null_and_disposed_blocks_are_refused_and_nothing_is_written()
    {
        using KvCache cache = Filled(ring: true);
        byte[] held = Held(cache);
        using Tensor good = Poisoned(DType.Float32, [Heads, 1, HeadDim], Device.Cpu);
        Assert.Throws<ArgumentNullException>(() => cache.Append(null!, good));
        Assert.Throws<ArgumentNullException>(() => cache.Append(good, null!));
        Tensor gone = Poisoned(DType.Float32, [Heads, 1, HeadDim], Device.Cpu);
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => cache.Append(good, gone));
        Unchanged(cache, held, "null or disposed");
    }

    [Fact]
    public void An_append_past_a_linear_capacity_is_refused_naming_the_numbers_and_nothing_is_written()
    {
        using KvCache cache = Filled(ring: false);       // holds 3 of 4
        byte[] held = Held(cache);
        using Tensor two = Poisoned(DType.Float16, [Heads, 2, HeadDim], Device.Cpu);
        var e = Assert.Throws<InvalidOperationException>(() => cache.Append(two, two));
        Assert.Contains("appending 2 positions to a cache holding 3 of 4", e.Message);
        Unchanged(cache, held, "past capacity");
        using Tensor one = Poisoned(DType.Float16, [Heads, 1, HeadDim], Device.Cpu);
        cache.Append(one, one);                          // exactly full is fine
        Assert.Equal(Capacity, cache.Length);
    }

    [Fact]
    public void Reads_outside_the_held_range_are_refused()
    {
        using KvCache linear = Filled(ring: false);     // holds [0, 3)
        Assert.Throws<ArgumentOutOfRangeException>(() => linear.Read(-1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => linear.Read(0, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => linear.Read(0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => linear.Read(3, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => linear.Read(long.MaxValue, int.MaxValue));
        Assert.Throws<ArgumentOutOfRangeException>(() => linear.Read(4, 0));
        (Tensor empty, Tensor alsoEmpty) = linear.Read(3, 0);
        empty.Dispose();
        alsoEmpty.Dispose();

        using KvCache ring = Filled(ring: true);        // 7 appended, holds [3, 7)
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ring.Read(2, 2));
        Assert.Contains("holds [3, 7)", e.Message);
        Assert.Contains("evicted", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Read(6, 2));
        (Tensor k, Tensor v) = ring.Read(3, 4);
        k.Dispose();
        v.Dispose();
    }

    [Fact]
    public void Reads_into_bad_tensors_are_refused_and_leave_them_unwritten()
    {
        using KvCache cache = Filled(ring: false);
        using Tensor good = Poisoned(DType.Float32, [Heads, 2, HeadDim], Device.Cpu);
        using Tensor wrongDtype = Poisoned(DType.Float16, [Heads, 2, HeadDim], Device.Cpu);
        using Tensor wrongLength = Poisoned(DType.Float32, [Heads, 3, HeadDim], Device.Cpu);
        using Tensor wrongRank = Poisoned(DType.Float32, [Heads * 2, HeadDim], Device.Cpu);
        using var mapping = new HostBlock(Heads * 2 * HeadDim * 4);
        using Tensor readOnly = Tensor.ViewOfHostMemory(DType.Float32, [Heads, 2, HeadDim], mapping, mapping.Length, 0, readOnly: true);
        foreach (Tensor bad in new[] { wrongDtype, wrongLength, wrongRank, readOnly })
        {
            Assert.Throws<ArgumentException>(() => cache.Read(0, 2, good, bad));
            Assert.All(Bytes(good), b => Assert.Equal(Poison, b));
        }
        Assert.Throws<ArgumentException>(() => cache.Read(0, 2, good, good));
        Assert.Throws<ArgumentNullException>(() => cache.Read(0, 2, null!, good));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Read(2, 2, good, good));
        Assert.All(Bytes(good), b => Assert.Equal(Poison, b));
    }

    [Fact]
    public void A_disposed_cache_refuses_every_operation_and_may_be_disposed_again()
    {
        KvCache cache = Filled(ring: true);
        using Tensor block = Poisoned(DType.Float32, [Heads, 1, HeadDim], Device.Cpu);
        cache.Dispose();
        cache.Dispose();
        Assert.Throws<ObjectDisposedException>(() => cache.Append(block, block));
        Assert.Throws<ObjectDisposedException>(() => cache.Read(3, 1));
        Assert.Throws<ObjectDisposedException>(() => cache.Read(3, 1, block, block));
        Assert.Throws<ObjectDisposedException>(() => cache.Length);
        Assert.Throws<ObjectDisposedException>(() => cache.WindowStart);
        Assert.Throws<ObjectDisposedException>(() => cache.Clear());

        var layers = new MultiLayerKvCache(2, Heads, Capacity, HeadDim, DType.Float32);
        layers.Dispose();
        layers.Dispose();
        Assert.Throws<ObjectDisposedException>(() => layers[0]);
        Assert.Throws<ObjectDisposedException>(() => layers.Length);
        Assert.Throws<ObjectDisposedException>(() => layers.Clear());
    }

    /// <summary>A Float32 cache holding random positions: 3 of 4 (linear), or the last 4 of 7 (ring).</summary>
    private static KvCache Filled(bool ring)
    {
        var cache = new KvCache(Heads, Capacity, HeadDim, DType.Float32, ring: ring);
        int t = ring ? 7 : 3;
        var random = new Random(t);
        using Tensor keys = FromBytes(DType.Float32, [Heads, t, HeadDim], Device.Cpu, RandomBytes(random, Heads * t * HeadDim * 4));
        using Tensor values = FromBytes(DType.Float32, [Heads, t, HeadDim], Device.Cpu, RandomBytes(random, Heads * t * HeadDim * 4));
        cache.Append(keys, values);
        return cache;
    }

    /// <summary>Every held byte of both stores, in position order.</summary>
    private static byte[] Held(KvCache cache)
    {
        (Tensor k, Tensor v) = cache.Read(cache.WindowStart, (int)(cache.Length - cache.WindowStart));
        using (k)
        using (v)
            return [.. Bytes(k), .. Bytes(v)];
    }

    private static void Unchanged(KvCache cache, byte[] held, string rule)
    {
        Assert.Equal(cache.IsRing ? 7 : 3, cache.Length);
        BitExact(held, Held(cache), rule);
    }

}
