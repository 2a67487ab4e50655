using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// <see cref="KvCache.Attend"/> reads the held keys and values in place: for ring and linear caches, in memory and in a
/// file, of every dtype, after appends that wrap a ring any number of times, its output and log-sum-exp are bit for bit
/// those of <see cref="Attention.Forward"/> over the keys and values <see cref="KvCache.Read(long, int)"/> copies out.
/// </summary>
public sealed class KvCacheAttentionTests
{
    public sealed record Scenario(int Heads, int Group, int HeadDim, int Capacity, DType DType, bool Ring, bool File, int[] Appends, int Queries,
        bool Causal, int Window, int Seed)
    {
        public override string ToString() =>
            $"heads {Heads} x {Group}, D {HeadDim}, capacity {Capacity}, {DType}, {(Ring ? "ring" : "linear")}, {(File ? "file" : "memory")}, " +
            $"appends [{string.Join(", ", Appends)}], N {Queries}{(Causal ? ", causal" : "")}{(Window > 0 ? $", window {Window}" : "")}, seed {Seed}";
    }

    private static Gen<Scenario> Scenarios =>
        from heads in Gen.Choose(1, 3)
        from share in Gen.Elements(1, 2, 4)
        from d in Gen.Elements(1, 5, 16, 33, 64)
        from capacity in Gen.Choose(1, 150)
        from dtype in Gen.Elements(DType.Float32, DType.Float16, DType.BFloat16)
        from ring in Gen.Elements(false, true)
        from file in Gen.Elements(false, true)
        from count in Gen.Choose(1, 5)
        from appends in Gen.ArrayOf(Gen.Choose(1, 90), count)
        from queries in Gen.Elements(1, 1, 3)
        from causal in Gen.Elements(false, true)
        from window in Gen.Elements(0, 0, 7)
        from seed in Gen.Choose(0, int.MaxValue)
        select new Scenario(heads, share, d, ring ? capacity : Math.Max(capacity, appends.Sum()), dtype, ring, file, appends, queries, causal, window, seed);

    [Fact]
    public void Attend_equals_forward_over_the_read_back_keys_bit_for_bit()
    {
        string directory = Directory.CreateTempSubdirectory("kvcache-attend-").FullName;
        try
        {
            Prop.ForAll(Scenarios.ToArbitrary(), s => Run(s, directory)).Check(Config.QuickThrowOnFailure.WithMaxTest(60));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static void Run(Scenario s, string directory)
    {
        var random = new Random(s.Seed);
        using var cache = new KvCache(s.Heads, s.Capacity, s.HeadDim, s.DType, s.File ? directory : null, s.Ring);
        foreach (int t in s.Appends)
        {
            using Tensor keys = FromBytes(s.DType, [s.Heads, t, s.HeadDim], Device.Cpu, AttentionData.Values(random, s.DType, (long)s.Heads * t * s.HeadDim, 1));
            using Tensor values = FromBytes(s.DType, [s.Heads, t, s.HeadDim], Device.Cpu, AttentionData.Values(random, s.DType, (long)s.Heads * t * s.HeadDim, 1));
            cache.Append(keys, values);
        }
        int hq = s.Heads * s.Group, held = (int)(cache.Length - cache.WindowStart);
        using Tensor query = FromBytes(s.DType, [1, hq, s.Queries, s.HeadDim], Device.Cpu, AttentionData.Values(random, s.DType, (long)hq * s.Queries * s.HeadDim, 1));
        var mask = new AttentionMask(s.Causal, s.Window);
        using Tensor lse = Poisoned(DType.Float32, [1, hq, s.Queries], Device.Cpu);
        using Tensor output = cache.Attend(query, mask, logSumExp: lse);

        (Tensor readKeys, Tensor readValues) = cache.Read(cache.WindowStart, held);
        using (readKeys)
        using (readValues)
        {
            using Tensor k = FromBytes(s.DType, [1, s.Heads, held, s.HeadDim], Device.Cpu, Bytes(readKeys));
            using Tensor v = FromBytes(s.DType, [1, s.Heads, held, s.HeadDim], Device.Cpu, Bytes(readValues));
            using Tensor expectedLse = Poisoned(DType.Float32, [1, hq, s.Queries], Device.Cpu);
            using Tensor expected = Attention.Forward(query, k, v, mask, logSumExp: expectedLse);
            BitExact(Bytes(expected), Bytes(output), $"{s}: output");
            BitExact(Bytes(expectedLse), Bytes(lse), $"{s}: log-sum-exp");
        }
    }

    /// <summary>A query of another dtype is converted (the query block, not the cache) and its output comes back in its dtype.</summary>
    [Fact]
    public void A_query_of_another_dtype_is_converted_and_answered_in_its_dtype()
    {
        var random = new Random(4);
        using var cache = new KvCache(2, 40, 24, DType.BFloat16, ring: true);
        using Tensor keys = FromBytes(DType.BFloat16, [2, 55, 24], Device.Cpu, AttentionData.Values(random, DType.BFloat16, 2 * 55 * 24, 1));
        using Tensor values = FromBytes(DType.BFloat16, [2, 55, 24], Device.Cpu, AttentionData.Values(random, DType.BFloat16, 2 * 55 * 24, 1));
        cache.Append(keys, values);
        using Tensor query = FromBytes(DType.Float32, [1, 4, 1, 24], Device.Cpu, AttentionData.Values(random, DType.Float32, 96, 1));
        using Tensor output = cache.Attend(query);
        Assert.Equal(DType.Float32, output.DType);
        using Tensor converted = Precision.Convert(query, DType.BFloat16);
        using Tensor narrow = cache.Attend(converted);
        using Tensor widened = Precision.Convert(narrow, DType.Float32);
        BitExact(Bytes(widened), Bytes(output), "a Float32 query against the same query in BFloat16");
    }

    [Fact]
    public void Bad_queries_are_refused_before_anything_is_written()
    {
        using var cache = new KvCache(2, 8, 4, DType.Float32);
        using Tensor keys = Tensor.FromArray(new float[2 * 3 * 4], 2, 3, 4);
        cache.Append(keys, keys);
        using Tensor output = Poisoned(DType.Float32, [1, 2, 1, 4], Device.Cpu);
        byte[] before = Bytes(output);
        using Tensor batch2 = Tensor.Empty(DType.Float32, [2, 2, 1, 4]);
        using Tensor wrongD = Tensor.Empty(DType.Float32, [1, 2, 1, 5]);
        using Tensor wrongHeads = Tensor.Empty(DType.Float32, [1, 3, 1, 4]);
        using Tensor rank3 = Tensor.Empty(DType.Float32, [2, 1, 4]);
        using Tensor good = Tensor.Empty(DType.Float32, [1, 2, 1, 4]);
        using Tensor wrongOutput = Tensor.Empty(DType.Float32, [1, 2, 2, 4]);
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => cache.Attend(batch2, output: output)).ParamName);
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => cache.Attend(wrongD, output: output)).ParamName);
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => cache.Attend(wrongHeads, output: output)).ParamName);
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => cache.Attend(rank3, output: output)).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => cache.Attend(good, output: wrongOutput)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Attend(good, new AttentionMask(Window: -1), output: output));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Attend(good, scale: float.NaN, output: output));
        BitExact(before, Bytes(output), "the output after refused calls");
        cache.Dispose();
        Assert.Throws<ObjectDisposedException>(() => cache.Attend(good));
    }
}
