using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// Device checks of <c>kernels/attention.cl</c> (and its ILGPU mirror) through the backend, until the shared Attention
/// parity suite lands: forward (output and log-sum-exp) and backward (dq, dk, dv) against <see cref="AttentionReference"/>
/// within R u μ (μ the reference's magnitude, R = 2 (D + M + N group + 16), u = 2^-24) plus the output rounding of a
/// 16-bit dtype; every output buffer longer than its payload and filled with 0xFF, so an element left unwritten (0xFF..
/// is a NaN in every dtype) or a byte written past the end fails; a forward without the log-sum-exp gives the same bits;
/// the key store read as a ring. Shapes are small: the ILGPU CPU accelerator runs each group thread as an OS thread.
/// </summary>
public abstract class AttentionBackendTests
{
    private const int Guard = 64;

    protected abstract Device Device { get; }

    /// <summary>(B, Hq, Hkv, N, M, D, causal, window): tile edges, grouped heads, N &gt; M (queries that see nothing), D past one chunk.</summary>
    public static TheoryData<int, int, int, int, int, int, bool, int> Shapes() => new()
    {
        { 1, 2, 1, 5, 7, 3, false, 0 },
        { 2, 2, 2, 17, 33, 20, true, 0 },
        { 1, 2, 1, 20, 20, 69, true, 5 },
        { 1, 1, 1, 10, 4, 8, true, 0 },
        { 1, 1, 1, 3, 18, 256, false, 0 },
        { 1, 3, 1, 16, 40, 16, false, 9 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Float32_forward_and_backward_are_within_the_derived_bound(int b, int hq, int hkv, int n, int m, int d, bool causal, int window) =>
        Check(DType.Float32, b, hq, hkv, n, m, d, causal, window, seed: n * 31 + m);

    [Theory]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    public void Sixteen_bit_dtypes_widen_exactly_and_round_outputs(DType dtype) =>
        Check(dtype, 1, 2, 1, 18, 21, 13, true, 0, seed: 7);

    [Fact]
    public void A_ring_store_is_read_from_its_first_row()
    {
        Backend backend = Device.Backend;
        const int rows = 29, first = 20, keys = 19, n = 6, d = 10, hkv = 1, hq = 2;
        var random = new Random(5);
        double[] ring = Random(random, DType.Float32, (long)hkv * rows * d), ringV = Random(random, DType.Float32, (long)hkv * rows * d);
        double[] q = Random(random, DType.Float32, (long)hq * n * d);
        // The same keys, dense: key j is ring row (first + j) mod rows.
        double[] dense = new double[(long)hkv * keys * d], denseV = new double[dense.Length];
        for (int j = 0; j < keys; j++)
            for (int e = 0; e < d; e++)
            {
                dense[j * d + e] = ring[(first + j) % rows * d + e];
                denseV[j * d + e] = ringV[(first + j) % rows * d + e];
            }
        var mask = new AttentionMask(true, 8);
        var shape = new AttentionShape(DType.Float32, 1, hq, hkv, n, keys, d, mask.Causal, mask.Window, 0.3f, rows, first);
        using DeviceBuffer qb = Upload(backend, Encode(DType.Float32, q)), kb = Upload(backend, Encode(DType.Float32, ring)),
            vb = Upload(backend, Encode(DType.Float32, ringV));
        using DeviceBuffer o = Poisoned(backend, (long)hq * n * d * 4), lse = Poisoned(backend, (long)hq * n * 4);
        backend.AttentionForward(shape, qb, kb, vb, o, lse);
        var g = new AttentionReference.Geometry(1, hq, hkv, n, keys, d, mask, 0.3f);
        (AttentionReference.Values output, AttentionReference.Values logSumExp) = AttentionReference.Forward(g, q, dense, denseV);
        Compare(DType.Float32, output, Decode(DType.Float32, Read(backend, o, output.Value.Length * 4L)), Rounds(g), "ring output");
        Compare(DType.Float32, logSumExp, Decode(DType.Float32, Read(backend, lse, logSumExp.Value.Length * 4L)), Rounds(g), "ring lse", rounded: false);
    }

    private void Check(DType dtype, int b, int hq, int hkv, int n, int m, int d, bool causal, int window, int seed)
    {
        Backend backend = Device.Backend;
        var random = new Random(seed);
        int size = dtype.SizeOf();
        long queryElements = (long)b * hq * n * d, keyElements = (long)b * hkv * m * d, rows = (long)b * hq * n;
        double[] q = Random(random, dtype, queryElements), k = Random(random, dtype, keyElements), v = Random(random, dtype, keyElements);
        double[] dO = Random(random, dtype, queryElements);
        var mask = new AttentionMask(causal, window);
        float scale = (float)(1 / Math.Sqrt(d)) * 1.5f;
        var shape = new AttentionShape(dtype, b, hq, hkv, n, m, d, causal, window, scale);
        var g = new AttentionReference.Geometry(b, hq, hkv, n, m, d, mask, scale);

        using DeviceBuffer qb = Upload(backend, Encode(dtype, q)), kb = Upload(backend, Encode(dtype, k)), vb = Upload(backend, Encode(dtype, v));
        using DeviceBuffer ob = Poisoned(backend, queryElements * size), lse = Poisoned(backend, rows * 4);
        backend.AttentionForward(shape, qb, kb, vb, ob, lse);
        byte[] outputBytes = Read(backend, ob, queryElements * size), lseBytes = Read(backend, lse, rows * 4);
        (AttentionReference.Values output, AttentionReference.Values logSumExp) = AttentionReference.Forward(g, q, k, v);
        Compare(dtype, output, Decode(dtype, outputBytes), Rounds(g), "output");
        Compare(DType.Float32, logSumExp, Decode(DType.Float32, lseBytes), Rounds(g), "lse", rounded: false);

        using DeviceBuffer unread = Poisoned(backend, queryElements * size);
        backend.AttentionForward(shape, qb, kb, vb, unread, null);
        Assert.Equal(outputBytes, Read(backend, unread, queryElements * size));

        double[] o = Decode(dtype, outputBytes);
        using DeviceBuffer dOb = Upload(backend, Encode(dtype, dO)), delta = Poisoned(backend, rows * 4);
        using DeviceBuffer dq = Poisoned(backend, queryElements * size), dk = Poisoned(backend, keyElements * size), dv = Poisoned(backend, keyElements * size);
        backend.AttentionBackward(shape, dOb, qb, kb, vb, ob, lse, delta, dq, dk, dv);
        byte[] dqBytes = Read(backend, dq, queryElements * size), dkBytes = Read(backend, dk, keyElements * size), dvBytes = Read(backend, dv, keyElements * size);
        (AttentionReference.Values rdq, AttentionReference.Values rdk, AttentionReference.Values rdv) = AttentionReference.Backward(g, dO, q, k, v, o);
        Compare(dtype, rdq, Decode(dtype, dqBytes), Rounds(g), "dq");
        Compare(dtype, rdk, Decode(dtype, dkBytes), Rounds(g), "dk");
        Compare(dtype, rdv, Decode(dtype, dvBytes), Rounds(g), "dv");

        // Deterministic: a second backward gives the same bits.
        using DeviceBuffer dq2 = Poisoned(backend, queryElements * size), dk2 = Poisoned(backend, keyElements * size), dv2 = Poisoned(backend, keyElements * size);
        backend.AttentionBackward(shape, dOb, qb, kb, vb, ob, lse, delta, dq2, dk2, dv2);
        Assert.Equal(dqBytes, Read(backend, dq2, queryElements * size));
        Assert.Equal(dkBytes, Read(backend, dk2, keyElements * size));
        Assert.Equal(dvBytes, Read(backend, dv2, keyElements * size));
    }

    private static int Rounds(AttentionReference.Geometry g) => 2 * (g.HeadDim + g.Keys + g.Queries * g.Group + 16);

    private static void Compare(DType dtype, AttentionReference.Values expected, double[] actual, int rounds, string what, bool rounded = true)
    {
        double output = !rounded ? 0 : dtype switch { DType.Float16 => Math.Pow(2, -11), DType.BFloat16 => Math.Pow(2, -8), _ => 0 };
        for (int e = 0; e < expected.Value.Length; e++)
        {
            double value = expected.Value[e], got = actual[e];
            if (double.IsNegativeInfinity(value))
            {
                Assert.True(double.IsNegativeInfinity(got), $"{what}[{e}] = {got}, expected -inf");
                continue;
            }
            double bound = rounds * Math.Pow(2, -24) * expected.Magnitude[e] + output * Math.Abs(value);
            Assert.True(Math.Abs(got - value) <= bound, $"{what}[{e}] = {got}, expected {value} within {bound}");
        }
    }

    private static double[] Random(Random random, DType dtype, long count)
    {
        var values = new double[count];
        for (long e = 0; e < count; e++) values[e] = Decode(dtype, Encode(dtype, [random.NextDouble() * 4 - 2]))[0];
        return values;
    }

    private static byte[] Encode(DType dtype, double[] values)
    {
        var bytes = new byte[values.Length * dtype.SizeOf()];
        for (int e = 0; e < values.Length; e++)
            switch (dtype)
            {
                case DType.Float32: BitConverter.TryWriteBytes(bytes.AsSpan(4 * e), (float)values[e]); break;
                case DType.Float16: BitConverter.TryWriteBytes(bytes.AsSpan(2 * e), BitConverter.HalfToUInt16Bits((Half)(float)values[e])); break;
                default: BitConverter.TryWriteBytes(bytes.AsSpan(2 * e), BFloat16.FromSingle((float)values[e]).Bits); break;
            }
        return bytes;
    }

    private static double[] Decode(DType dtype, byte[] bytes)
    {
        var values = new double[bytes.Length / dtype.SizeOf()];
        for (int e = 0; e < values.Length; e++)
            values[e] = dtype switch
            {
                DType.Float32 => BitConverter.ToSingle(bytes, 4 * e),
                DType.Float16 => (double)BitConverter.ToHalf(bytes, 2 * e),
                _ => (float)BFloat16.FromBits(BitConverter.ToUInt16(bytes, 2 * e)),
            };
        return values;
    }

    private static DeviceBuffer Upload(Backend backend, byte[] bytes)
    {
        DeviceBuffer buffer = backend.Allocate(bytes.Length);
        backend.Write(buffer, 0, bytes);
        return buffer;
    }

    /// <summary>A buffer of <paramref name="payload"/> bytes plus a guard, all 0xFF.</summary>
    private static DeviceBuffer Poisoned(Backend backend, long payload)
    {
        var bytes = new byte[payload + Guard];
        Array.Fill(bytes, (byte)0xFF);
        return Upload(backend, bytes);
    }

    /// <summary>The payload, after asserting that the guard behind it is untouched.</summary>
    private static byte[] Read(Backend backend, DeviceBuffer buffer, long payload)
    {
        var bytes = new byte[payload + Guard];
        backend.Read(buffer, 0, bytes);
        Assert.True(bytes.AsSpan((int)payload).IndexOfAnyExcept((byte)0xFF) < 0, "the guard after an output was written");
        return bytes[..(int)payload];
    }
}

public sealed class OpenClAttentionBackendTests : AttentionBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);
}

public sealed class CudaAttentionBackendTests : AttentionBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}

public sealed class IlgpuAttentionBackendTests : AttentionBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);
}
