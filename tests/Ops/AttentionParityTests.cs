using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What every backend must do for <see cref="Attention"/>: on random shapes (N &lt; M, N = M, N &gt; M, N = 1; D from 1
/// to 256; grouped heads; causal and windows from 1 to beyond N) and every dtype, stay within the bound derived from the
/// double reference, forward and backward; handle large logits, queries with one visible key and queries with none;
/// write nothing past any output; and give the same bits for the same backward run twice.
/// </summary>
public abstract class AttentionParityTests
{
    protected abstract Device Device { get; }

    protected virtual int PropertyRuns => 40;

    /// <summary>The longest N or M of the shapes that cross tile edges; an emulated device caps it (still several of its tiles).</summary>
    protected virtual int LongSequence => 300;

    private static readonly DType[] Inputs = [DType.Float32, DType.Float16, DType.BFloat16];

    private static Gen<int> Length =>
        from kind in Gen.Choose(0, 9)
        from n in kind == 0 ? Gen.Constant(1) : kind <= 2 ? Gen.Choose(60, 140) : Gen.Choose(1, 40)
        select n;

    private static Gen<int> HeadDim =>
        from kind in Gen.Choose(0, 5)
        from d in kind == 0 ? Gen.Elements(1, 2, 3, 7, 255, 256) : kind == 1 ? Gen.Elements(16, 32, 64, 128) : Gen.Choose(1, 96)
        select d;

    private static Gen<AttentionCase> Cases(bool backward) =>
        from n in Length
        from m in Length
        from d in HeadDim
        from batch in Gen.Choose(1, 2)
        from kvHeads in Gen.Choose(1, 2)
        from heads in Gen.Elements(1, 1, 2, 3)
        from causal in Gen.Elements(false, true)
        from window in Gen.Elements(0, 0, 1, 2, 5, 17, n, n + m + 3)
        from dtype in Gen.Elements(Inputs)
        from seed in Gen.Choose(0, int.MaxValue)
        select new AttentionCase(batch, kvHeads * heads, kvHeads, n, m, d, causal, window, dtype, backward, seed);

    [Fact]
    public void Forward_on_random_shapes_masks_heads_and_dtypes_stays_within_the_derived_bound()
    {
        Device device = Device;   // skips (or fails) here, not inside the property, when the backend is missing
        Prop.ForAll(Cases(backward: false).ToArbitrary(), c => CaseAssert.Passes(c, device))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    [Fact]
    public void Backward_on_random_shapes_masks_heads_and_dtypes_stays_within_the_derived_bound()
    {
        Device device = Device;
        Prop.ForAll(Cases(backward: true).ToArbitrary(), c => CaseAssert.Passes(c, device))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    /// <summary>Shapes that cross the kernels' query and key tiles several times, with windows that start and end inside tiles.</summary>
    [Theory]
    [InlineData(1.0, 1.0, 64, true, 0)]
    [InlineData(1.0, 1.0, 64, true, 100)]
    [InlineData(0.5, 1.0, 40, true, 37)]
    [InlineData(1.0, 0.7, 72, false, 50)]
    [InlineData(1.0, 1.0, 128, false, 0)]
    public void Long_sequences_across_tiles_stay_within_the_bound(double queryShare, double keyShare, int d, bool causal, int window)
    {
        Device device = Device;
        int n = (int)(LongSequence * queryShare), m = (int)(LongSequence * keyShare);
        foreach (bool backward in new[] { false, true })
        {
            CaseAssert.Passes(new AttentionCase(1, 2, 1, n, m, d, causal, window, DType.Float32, backward, n + m + d), device);
            CaseAssert.Passes(new AttentionCase(1, 4, 2, n, m, d, causal, window, DType.BFloat16, backward, n * m), device);
        }
    }

    /// <summary>
    /// A few queries over thousands of keys (a decode step over a long cache): the CPU splits the keys into chunks and
    /// merges their partial softmaxes; every backend must stay within the bound, windows and NaN-free merges included.
    /// </summary>
    [Theory]
    [InlineData(DType.Float32, 1, false, 0)]
    [InlineData(DType.BFloat16, 1, true, 0)]
    [InlineData(DType.Float16, 3, true, 2500)]
    public void Few_queries_over_many_keys_stay_within_the_bound(DType dtype, int n, bool causal, int window)
    {
        Device device = Device;
        CaseAssert.Passes(new AttentionCase(1, 4, 2, n, 5000, 64, causal, window, dtype, false, n + window), device);
        CaseAssert.Passes(new AttentionCase(2, 2, 2, n, 3001, 24, causal, window, dtype, false, n + window + 1, Logits: 30), device);
    }

    /// <summary>Scores far past exp's range (q times 300): the online softmax must subtract its running maximum.</summary>
    [Theory]
    [InlineData(DType.Float32, false)]
    [InlineData(DType.Float16, true)]
    [InlineData(DType.BFloat16, false)]
    public void Large_logits_that_overflow_a_naive_exp_stay_within_the_bound(DType dtype, bool causal)
    {
        Device device = Device;
        foreach (bool backward in new[] { false, true })
            CaseAssert.Passes(new AttentionCase(1, 2, 2, 33, 70, 24, causal, 0, dtype, backward, 5, Logits: 300), device);
    }

    [Theory]
    [InlineData(0.5f)]
    [InlineData(3f)]
    public void An_explicit_scale_stays_within_the_bound(float scale)
    {
        Device device = Device;
        CaseAssert.Passes(new AttentionCase(2, 2, 1, 17, 29, 12, true, 0, DType.Float32, false, 11, Scale: scale), device);
        CaseAssert.Passes(new AttentionCase(2, 2, 1, 17, 29, 12, true, 0, DType.Float16, true, 12, Scale: scale), device);
    }

    /// <summary>
    /// Causal with window 1: each query sees exactly its own key, so its weight is exactly 1 and its output is exactly that
    /// value row, and its log-sum-exp is exactly its score's Float32 value within the bound. With N &gt; M the first N - M
    /// queries see no key: output 0, log-sum-exp -inf, and no gradient flows through them.
    /// </summary>
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float16)]
    public void One_visible_key_copies_its_value_and_no_visible_key_gives_zero(DType dtype)
    {
        Device device = Device;
        const int n = 40, m = 25, d = 19;
        var random = new Random(8);
        byte[] qBytes = AttentionData.Values(random, dtype, n * d, 1), kBytes = AttentionData.Values(random, dtype, m * d, 1);
        byte[] vBytes = AttentionData.Values(random, dtype, m * d, 1);
        using Tensor q = FromBytes(dtype, [1, 1, n, d], device, qBytes);
        using Tensor k = FromBytes(dtype, [1, 1, m, d], device, kBytes);
        using Tensor v = FromBytes(dtype, [1, 1, m, d], device, vBytes);
        using Tensor lse = Poisoned(DType.Float32, [1, 1, n], device);
        using Tensor output = Attention.Forward(q, k, v, new AttentionMask(Causal: true, Window: 1), logSumExp: lse);
        byte[] actual = Bytes(output);
        int size = dtype.SizeOf(), empty = n - m;
        Assert.True(actual.AsSpan(0, empty * d * size).IndexOfAnyExcept((byte)0) < 0, "a query that sees no key has a non-zero output");
        BitExact(vBytes, actual[(empty * d * size)..], "the outputs of queries that see one key");
        float[] l = lse.ToArray<float>();
        Assert.All(l[..empty], x => Assert.Equal(float.NegativeInfinity, x));
        Assert.All(l[empty..], x => Assert.True(float.IsFinite(x)));

        using Tensor dO = FromBytes(dtype, [1, 1, n, d], device, AttentionData.Values(random, dtype, n * d, 1));
        (Tensor dq, Tensor dk, Tensor dv) = Attention.Backward(dO, q, k, v, output, lse, new AttentionMask(Causal: true, Window: 1));
        using (dq)
        using (dk)
        using (dv)
        {
            Assert.True(Bytes(dq).AsSpan(0, empty * d * size).IndexOfAnyExcept((byte)0) < 0, "a query that sees no key has a gradient");
        }
        // The gradients of the same scene against the reference (each weight is 1 only up to the log-sum-exp's rounding).
        CaseAssert.Passes(new AttentionCase(1, 1, 1, n, m, d, true, 1, dtype, true, 8), device);
    }

    /// <summary>Keys beyond every query's window get zero gradients; a window past N + M equals no window.</summary>
    [Fact]
    public void Windows_wider_than_the_sequence_equal_no_window_and_unseen_keys_get_zero_gradients()
    {
        Device device = Device;
        var wide = new AttentionCase(1, 2, 1, 20, 45, 16, false, 200, DType.Float32, false, 4);
        var none = wide with { Window = 0 };
        CaseAssert.Passes(wide, device);
        CaseAssert.Passes(none, device);
        // Causal, window 3, N = 10 of M = 40: keys 0 .. 27 are seen by no query.
        const int n = 10, m = 40, d = 8;
        var random = new Random(2);
        using Tensor q = FromBytes(DType.Float32, [1, 1, n, d], device, AttentionData.Values(random, DType.Float32, n * d, 1));
        using Tensor k = FromBytes(DType.Float32, [1, 1, m, d], device, AttentionData.Values(random, DType.Float32, m * d, 1));
        using Tensor v = FromBytes(DType.Float32, [1, 1, m, d], device, AttentionData.Values(random, DType.Float32, m * d, 1));
        using Tensor lse = Tensor.Empty(DType.Float32, [1, 1, n], device);
        var mask = new AttentionMask(true, 3);
        using Tensor o = Attention.Forward(q, k, v, mask, logSumExp: lse);
        using Tensor dO = FromBytes(DType.Float32, [1, 1, n, d], device, AttentionData.Values(random, DType.Float32, n * d, 1));
        (Tensor dq, Tensor dk, Tensor dv) = Attention.Backward(dO, q, k, v, o, lse, mask);
        using (dq)
        using (dk)
        using (dv)
        {
            Assert.All(dk.ToArray<float>()[..((m - n - 2) * d)], x => Assert.Equal(0f, x));
            Assert.All(dv.ToArray<float>()[..((m - n - 2) * d)], x => Assert.Equal(0f, x));
        }
    }

    /// <summary>The backward run twice gives the same bits: no sum's order depends on scheduling.</summary>
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.BFloat16)]
    public void Backward_is_bitwise_deterministic(DType dtype)
    {
        Device device = Device;
        var c = new AttentionCase(2, 4, 1, 130, 150, 40, true, 0, dtype, true, 21);
        byte[][] first = BackwardBytes(device, c), second = BackwardBytes(device, c);
        for (int t = 0; t < 3; t++) BitExact(first[t], second[t], $"gradient {t} of two identical runs");
    }

    private static byte[][] BackwardBytes(Device device, AttentionCase c)
    {
        var random = new Random(c.Seed);
        long qe = (long)c.QueryHeads * c.Queries * c.HeadDim * c.Batch, ke = (long)c.KvHeads * c.Keys * c.HeadDim * c.Batch;
        using Tensor q = FromBytes(c.DType, [c.Batch, c.QueryHeads, c.Queries, c.HeadDim], device, AttentionData.Values(random, c.DType, qe, 1));
        using Tensor k = FromBytes(c.DType, [c.Batch, c.KvHeads, c.Keys, c.HeadDim], device, AttentionData.Values(random, c.DType, ke, 1));
        using Tensor v = FromBytes(c.DType, [c.Batch, c.KvHeads, c.Keys, c.HeadDim], device, AttentionData.Values(random, c.DType, ke, 1));
        using Tensor dO = FromBytes(c.DType, [c.Batch, c.QueryHeads, c.Queries, c.HeadDim], device, AttentionData.Values(random, c.DType, qe, 1));
        using Tensor lse = Tensor.Empty(DType.Float32, [c.Batch, c.QueryHeads, c.Queries], device);
        using Tensor o = Attention.Forward(q, k, v, c.Mask, logSumExp: lse);
        (Tensor dq, Tensor dk, Tensor dv) = Attention.Backward(dO, q, k, v, o, lse, c.Mask);
        using (dq)
        using (dk)
        using (dv) return [Bytes(dq), Bytes(dk), Bytes(dv)];
    }

    /// <summary>The kernels run with every output in a buffer longer than it: each byte after the output keeps its poison.</summary>
    [Theory]
    [InlineData(DType.Float32, 1, 1, 1, false, 0)]
    [InlineData(DType.Float16, 33, 65, 17, true, 0)]
    [InlineData(DType.BFloat16, 70, 70, 130, true, 9)]
    [InlineData(DType.Float32, 5, 90, 256, false, 0)]
    public void Nothing_is_written_past_any_output(DType dtype, int n, int m, int d, bool causal, int window)
    {
        Device device = Device;
        Backend backend = device.Backend;
        var random = new Random(n + m + d);
        const int heads = 2, kvHeads = 1;
        int size = dtype.SizeOf();
        long qBytes = (long)heads * n * d * size, kBytes = (long)kvHeads * m * d * size, lseBytes = heads * n * 4L;
        using Tensor q = FromBytes(dtype, [1, heads, n, d], device, AttentionData.Values(random, dtype, heads * n * d, 1));
        using Tensor k = FromBytes(dtype, [1, kvHeads, m, d], device, AttentionData.Values(random, dtype, kvHeads * m * d, 1));
        using Tensor v = FromBytes(dtype, [1, kvHeads, m, d], device, AttentionData.Values(random, dtype, kvHeads * m * d, 1));
        using Tensor dO = FromBytes(dtype, [1, heads, n, d], device, AttentionData.Values(random, dtype, heads * n * d, 1));
        var shape = new AttentionShape(dtype, 1, heads, kvHeads, n, m, d, causal, window, (float)(1 / Math.Sqrt(d)));
        using DeviceBuffer o = Guarded(backend, qBytes), lse = Guarded(backend, lseBytes), delta = Guarded(backend, lseBytes);
        using DeviceBuffer dq = Guarded(backend, qBytes), dk = Guarded(backend, kBytes), dv = Guarded(backend, kBytes);
        backend.AttentionForward(shape, q.Buffer, k.Buffer, v.Buffer, o, lse);
        backend.AttentionBackward(shape, dO.Buffer, q.Buffer, k.Buffer, v.Buffer, o, lse, delta, dq, dk, dv);
        foreach ((DeviceBuffer buffer, long bytes, string name) in new[] { (o, qBytes, "output"), (lse, lseBytes, "logSumExp"),
                     (dq, qBytes, "dq"), (dk, kBytes, "dk"), (dv, kBytes, "dv") })
        {
            var after = new byte[bytes + GuardBytes];
            backend.Read(buffer, 0, after);
            Assert.True(after.AsSpan((int)bytes).IndexOfAnyExcept(Poison) < 0, $"attention wrote past {name}");
            if (name != "logSumExp")
                Assert.DoesNotContain(LinalgReference.Values(after.AsSpan(0, (int)bytes), name == "logSumExp" ? DType.Float32 : dtype), x => double.IsNaN(x));
        }
    }

    private static DeviceBuffer Guarded(Backend backend, long bytes)
    {
        DeviceBuffer buffer = backend.Allocate(bytes + GuardBytes);
        backend.Write(buffer, 0, Enumerable.Repeat(Poison, (int)bytes + GuardBytes).ToArray());
        return buffer;
    }

    /// <summary>Without an output one is allocated on q's device and equals the one written into a given output.</summary>
    [Fact]
    public void A_new_output_equals_a_given_one_and_empty_shapes_follow_the_rules()
    {
        Device device = Device;
        var random = new Random(3);
        using Tensor q = FromBytes(DType.BFloat16, [2, 3, 9, 10], device, AttentionData.Values(random, DType.BFloat16, 540, 1));
        using Tensor k = FromBytes(DType.BFloat16, [2, 1, 12, 10], device, AttentionData.Values(random, DType.BFloat16, 240, 1));
        using Tensor v = FromBytes(DType.BFloat16, [2, 1, 12, 10], device, AttentionData.Values(random, DType.BFloat16, 240, 1));
        using Tensor fresh = Attention.Forward(q, k, v, new AttentionMask(true));
        using Tensor given = Poisoned(DType.BFloat16, [2, 3, 9, 10], device);
        Attention.Forward(q, k, v, new AttentionMask(true), output: given);
        Assert.Equal(device, fresh.Device);
        Assert.Equal(DType.BFloat16, fresh.DType);
        BitExact(Bytes(given), Bytes(fresh), "a new output and a given one");

        // No keys: every query sees none (output 0, log-sum-exp -inf); no queries: nothing to do.
        using Tensor noKeys = Tensor.Empty(DType.BFloat16, [2, 1, 0, 10], device);
        using Tensor lse = Poisoned(DType.Float32, [2, 3, 9], device);
        using Tensor zeros = Attention.Forward(q, noKeys, noKeys, logSumExp: lse);
        Assert.True(Bytes(zeros).AsSpan().IndexOfAnyExcept((byte)0) < 0);
        Assert.All(lse.ToArray<float>(), x => Assert.Equal(float.NegativeInfinity, x));
        using Tensor noQueries = Tensor.Empty(DType.BFloat16, [2, 3, 0, 10], device);
        using Tensor none = Attention.Forward(noQueries, k, v);
        Assert.Equal([2L, 3L, 0L, 10L], none.Shape);
        using Tensor noLse = Tensor.Empty(DType.Float32, [2, 3, 0], device);
        (Tensor dq, Tensor dk, Tensor dv) = Attention.Backward(noQueries, noQueries, k, v, noQueries, noLse);
        using (dq)
        using (dk)
        using (dv)
        {
            Assert.Equal([2L, 3L, 0L, 10L], dq.Shape);
            Assert.True(Bytes(dk).AsSpan().IndexOfAnyExcept((byte)0) < 0);
            Assert.True(Bytes(dv).AsSpan().IndexOfAnyExcept((byte)0) < 0);
        }
    }
}

public sealed class CpuAttentionParityTests : AttentionParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class CpuScalarAttentionParityTests : AttentionParityTests
{
    protected override Device Device => Backends.CpuScalar;

    protected override int PropertyRuns => 20;
}

public sealed class Cpu128AttentionParityTests : AttentionParityTests
{
    protected override Device Device => Backends.Cpu128;

    protected override int PropertyRuns => 20;
}

public sealed class Cpu256AttentionParityTests : AttentionParityTests
{
    protected override Device Device => Backends.Cpu256;

    protected override int PropertyRuns => 20;
}

public sealed class OpenClAttentionParityTests : AttentionParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 20;
}

public sealed class CudaAttentionParityTests : AttentionParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
