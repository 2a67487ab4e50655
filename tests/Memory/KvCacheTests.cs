using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Memory;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// <see cref="KvCache"/> against a plain model: per head, the list of every row ever appended, converted to the cache's
/// dtype by <see cref="PrecisionReference"/> (independent of the cache's conversion kernels). Every read of every held
/// range must equal the model's rows bit for bit, and a ring must hold exactly the last W of them.
/// </summary>
public sealed class KvCacheTests
{
    private static readonly DType[] Floats = [DType.Float32, DType.Float16, DType.BFloat16];

    /// <summary>
    /// One append: t positions of random bits (NaN payloads, ±0, subnormals, ±Inf included) in some float dtype; t = -1
    /// is a <see cref="KvCache.Clear"/> instead.
    /// </summary>
    public sealed record Step(int T, DType From, int Seed, bool OtherBackend);

    /// <summary>A cache's configuration and what is appended to it.</summary>
    public sealed record Scenario(int Heads, int HeadDim, int Capacity, DType DType, bool Ring, bool File, Step[] Steps)
    {
        public override string ToString() =>
            $"heads {Heads}, headDim {HeadDim}, capacity {Capacity}, {DType}, {(Ring ? "ring" : "linear")}, {(File ? "file" : "memory")}, " +
            $"appends [{string.Join(", ", Steps.Select(s => s.T < 0 ? "clear" : $"{s.T} {s.From}{(s.OtherBackend ? " scalar-cpu" : "")}"))}]";
    }

    private static Gen<Scenario> Scenarios(bool fileBacking) =>
        from heads in Gen.Choose(1, 4)
        from headDim in Gen.Choose(1, 9)
        from capacity in Gen.Choose(1, 12)
        from dtype in Gen.Elements(Floats)
        from ring in Gen.Elements(false, true)
        from file in fileBacking ? Gen.Elements(false, true) : Gen.Constant(false)
        from count in Gen.Choose(0, 7)
        from steps in Gen.ArrayOf(
            from t in Gen.Frequency((1, Gen.Constant(-1)), (1, Gen.Constant(0)), (5, Gen.Choose(1, 3)), (2, Gen.Choose(1, 2 * capacity + 1)))
            from source in Gen.Elements(Floats)
            from seed in Gen.Choose(0, int.MaxValue)
            from other in Gen.Elements(false, false, true)
            select new Step(t, source, seed, other), count)
        select new Scenario(heads, headDim, capacity, dtype, ring, file, steps);

    [Fact]
    public void Every_read_of_every_held_range_equals_the_appended_rows()
    {
        string directory = Directory.CreateTempSubdirectory("kvcache-test-").FullName;
        try
        {
            Prop.ForAll(Scenarios(fileBacking: true).ToArbitrary(), s => Run(s, directory, Device.Cpu, Device.Cpu))
                .Check(Config.QuickThrowOnFailure.WithMaxTest(150));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(DeviceKind.OpenCl)]
    [InlineData(DeviceKind.Cuda)]
    public void A_cache_in_device_memory_equals_the_model_for_host_and_device_inputs(DeviceKind kind)
    {
        Device device = Backends.Require(kind);
        Prop.ForAll(Scenarios(fileBacking: false).ToArbitrary(), s =>
        {
            Run(s, null, device, Device.Cpu);
            Run(s, null, device, device);
            Run(s, null, Device.Cpu, device);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(25));
    }

    [Fact]
    public void A_ring_holds_constant_memory_however_long_the_sequence()
    {
        string directory = Directory.CreateTempSubdirectory("kvcache-test-").FullName;
        try
        {
            foreach (string? backing in new[] { null, directory })
            {
                using var cache = new KvCache(2, 16, 8, DType.Float16, backing, ring: true);
                long bytes = cache.ByteCount, file = cache.BackingFileLength ?? 0;
                Assert.Equal(2L * 2 * 16 * 8 * 2, bytes);
                using Tensor block = Tensor.Zeros(DType.Float16, [2, 7, 8], Device.Cpu);
                for (int i = 0; i < 1000; i++) cache.Append(block, block);
                Assert.Equal(7000, cache.Length);
                Assert.Equal(7000 - 16, cache.WindowStart);
                Assert.Equal(bytes, cache.ByteCount);
                Assert.Equal(file, cache.BackingFileLength ?? 0);
                if (backing is not null) Assert.Equal(bytes, cache.BackingFileLength);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Clear_forgets_every_position_and_the_cache_fills_again()
    {
        using var cache = new KvCache(1, 3, 2, DType.Float32);
        using Tensor block = Tensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6 }, 1, 3, 2);
        cache.Append(block, block);
        cache.Clear();
        Assert.Equal(0, cache.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Read(0, 1));
        cache.Append(block, block);
        (Tensor k, Tensor v) = cache.Read(1, 2);
        using (k)
        using (v)
            Assert.Equal(new float[] { 3, 4, 5, 6 }, v.ToArray<float>());
    }

    [Fact]
    public void A_multi_layer_cache_holds_independent_layers_and_reports_their_common_length()
    {
        using var cache = new MultiLayerKvCache(3, 2, 4, 2, DType.BFloat16);
        Assert.Equal(3, cache.Layers);
        Assert.Equal(3 * cache[0].ByteCount, cache.ByteCount);
        using Tensor block = Tensor.FromArray(Enumerable.Range(0, 8).Select(i => (float)i).ToArray(), 2, 2, 2);
        cache[0].Append(block, block);
        cache[1].Append(block, block);
        Assert.Equal(0, cache.Length);                  // layer 2 has not appended this step yet
        cache[2].Append(block, block);
        Assert.Equal(2, cache.Length);
        Assert.Equal(0, cache[0].Length - 2);
        cache.Clear();
        Assert.Equal([0L, 0, 0], Enumerable.Range(0, 3).Select(l => cache[l].Length));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache[3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache[-1]);
    }

    /// <summary>Appends each step to a cache and to the model, and after each one checks every held range both ways of reading.</summary>
    private static void Run(Scenario s, string? directory, Device cacheDevice, Device inputDevice)
    {
        using var cache = new KvCache(s.Heads, s.Capacity, s.HeadDim, s.DType, s.File ? directory : null, s.Ring, s.File ? null : cacheDevice);
        Model keys = new(s.Heads), values = new(s.Heads);
        long rowBytes = (long)s.HeadDim * s.DType.SizeOf();
        foreach (Step step in s.Steps)
        {
            if (step.T < 0)
            {
                cache.Clear();
                keys.Clear();
                values.Clear();
                continue;
            }
            var random = new Random(step.Seed);
            long[] shape = [s.Heads, step.T, s.HeadDim];
            byte[] keyBytes = RandomBytes(random, s.Heads * step.T * s.HeadDim * step.From.SizeOf());
            byte[] valueBytes = RandomBytes(random, keyBytes.Length);
            Device device = step.OtherBackend && inputDevice.Kind == DeviceKind.Cpu ? Backends.CpuScalar : inputDevice;
            bool fits = s.Ring || keys.Length + step.T <= s.Capacity;
            using (Tensor k = FromBytes(step.From, shape, device, keyBytes))
            using (Tensor v = FromBytes(step.From, shape, device, valueBytes))
            {
                if (fits) cache.Append(k, v);
                else Assert.Throws<InvalidOperationException>(() => cache.Append(k, v));
            }
            // A refused append changes nothing: the reads below still see only the model's rows.
            if (fits)
            {
                keys.Append(keyBytes, step.From, s.DType, step.T, s.HeadDim);
                values.Append(valueBytes, step.From, s.DType, step.T, s.HeadDim);
            }

            Assert.Equal(keys.Length, cache.Length);
            long held = s.Ring ? Math.Min(keys.Length, s.Capacity) : keys.Length;
            Assert.Equal(keys.Length - held, cache.WindowStart);
            for (long start = cache.WindowStart; start <= keys.Length; start++)
                for (int length = 0; start + length <= keys.Length; length++)
                    CheckRead(cache, keys, values, start, length, rowBytes, s);
            if (cache.WindowStart > 0)
                Assert.Throws<ArgumentOutOfRangeException>(() => cache.Read(cache.WindowStart - 1, 1));
        }
    }

    private static void CheckRead(KvCache cache, Model keys, Model values, long start, int length, long rowBytes, Scenario s)
    {
        string what = $"{s}: read [{start}, {start + length})";
        (Tensor k, Tensor v) = cache.Read(start, length);
        using (k)
        using (v)
        {
            Assert.Equal(new long[] { s.Heads, length, s.HeadDim }, k.Shape);
            Assert.Equal(s.DType, v.DType);
            Assert.Same(cache.Device, k.Device);
            BitExact(keys.Slice(start, length), Bytes(k), what + " keys");
            BitExact(values.Slice(start, length), Bytes(v), what + " values");
        }
        // Into the caller's own tensors, poisoned so an unwritten byte shows; on the host whatever the cache's device.
        using Tensor intoK = Poisoned(s.DType, [s.Heads, length, s.HeadDim], Device.Cpu);
        using Tensor intoV = Poisoned(s.DType, [s.Heads, length, s.HeadDim], Device.Cpu);
        cache.Read(start, length, intoK, intoV);
        BitExact(keys.Slice(start, length), Bytes(intoK), what + " keys into a given tensor");
        BitExact(values.Slice(start, length), Bytes(intoV), what + " values into a given tensor");
    }

    /// <summary>Per head, every row ever appended, as bytes of the cache's dtype.</summary>
    private sealed class Model(int heads)
    {
        private readonly List<byte[]>[] _rows = [.. Enumerable.Range(0, heads).Select(_ => new List<byte[]>())];

        public long Length => _rows[0].Count;

        public void Clear()
        {
            foreach (List<byte[]> head in _rows) head.Clear();
        }

        public void Append(byte[] block, DType from, DType to, int t, int headDim)
        {
            int inSize = from.SizeOf(), outSize = to.SizeOf();
            for (int h = 0; h < _rows.Length; h++)
                for (int i = 0; i < t; i++)
                {
                    var row = new byte[headDim * outSize];
                    for (int e = 0; e < headDim; e++)
                    {
                        int at = ((h * t + i) * headDim + e) * inSize;
                        ulong bits = inSize == 4 ? BitConverter.ToUInt32(block, at) : BitConverter.ToUInt16(block, at);
                        ulong converted = PrecisionReference.Convert(bits, from, to);
                        if (outSize == 4) BitConverter.TryWriteBytes(row.AsSpan(e * 4), (uint)converted);
                        else BitConverter.TryWriteBytes(row.AsSpan(e * 2), (ushort)converted);
                    }
                    _rows[h].Add(row);
                }
        }

        /// <summary>The bytes of positions [start, start + length) of every head, [heads, length, headDim] in C order.</summary>
        public byte[] Slice(long start, int length) =>
            [.. _rows.SelectMany(head => head.Skip((int)start).Take(length).SelectMany(row => row))];
    }
}
