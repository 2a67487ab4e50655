using System.Runtime.InteropServices;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// One <see cref="Linalg.MatMul"/> scenario: op(A) [M, K] times op(B) [K, N] from seeded random matrices of each dtype,
/// run on a device through the public API and checked element by element against <see cref="LinalgReference"/> within
/// <see cref="Tolerances.MatMulError"/>. With beta 0 the output starts as NaN (0xFF bytes), which must not show through.
/// </summary>
public sealed record MatMulCase(int M, int N, int K, bool TransposeA, bool TransposeB, DType AType, DType BType, float Alpha, float Beta, int Seed)
{
    public override string ToString() =>
        $"[{M}, {K}]{(TransposeA ? "^T" : "")} {AType} x [{K}, {N}]{(TransposeB ? "^T" : "")} {BType}, alpha {Alpha:R}, beta {Beta:R}, seed {Seed}";

    public void Check(Device device)
    {
        var random = new Random(Seed);
        byte[] a = LinalgData.Matrix(random, AType, (long)M * K), b = LinalgData.Matrix(random, BType, (long)K * N);
        using Tensor left = FromBytes(AType, TransposeA ? [K, M] : [M, K], device, a);
        using Tensor right = FromBytes(BType, TransposeB ? [N, K] : [K, N], device, b);
        float[]? old = Beta == 0 ? null : LinalgData.Floats(random, (long)M * N);
        using Tensor c = old is null ? Poisoned(DType.Float32, [M, N], device) : OnDevice(old, [M, N], device);
        Tensor result = Linalg.MatMul(left, right, TransposeA, TransposeB, Alpha, Beta, c);
        Assert.Same(c, result);
        LinalgReference.Result expected = LinalgReference.MatMul(LinalgReference.Values(a, AType), TransposeA,
            LinalgReference.Values(b, BType), TransposeB, M, N, K, Alpha, Beta, old?.Select(x => (double)x).ToArray());
        LinalgData.AssertWithinBound(ToString(), c.ToArray<float>(), N, expected, K, Alpha, Beta, old);
        BitExact(a, Bytes(left), $"{this}: A changed");
        BitExact(b, Bytes(right), $"{this}: B changed");
    }
}

/// <summary>
/// One <see cref="Linalg.Syrk"/> scenario: A [Rows, D] of a dtype, the old C (when beta is not 0) random and not
/// symmetric, so only its lower triangle may count. The result must be within the bound everywhere and its two
/// triangles bit-identical.
/// </summary>
public sealed record SyrkCase(int Rows, int D, DType AType, float Alpha, float Beta, int Seed)
{
    public override string ToString() => $"[{Rows}, {D}] {AType}, alpha {Alpha:R}, beta {Beta:R}, seed {Seed}";

    public void Check(Device device)
    {
        var random = new Random(Seed);
        byte[] a = LinalgData.Matrix(random, AType, (long)Rows * D);
        using Tensor x = FromBytes(AType, [Rows, D], device, a);
        float[]? old = Beta == 0 ? null : LinalgData.Floats(random, (long)D * D);
        using Tensor c = old is null ? Poisoned(DType.Float32, [D, D], device) : OnDevice(old, [D, D], device);
        Assert.Same(c, Linalg.Syrk(x, Alpha, Beta, c));
        LinalgReference.Result expected = LinalgReference.Syrk(LinalgReference.Values(a, AType), Rows, D, Alpha, Beta, old?.Select(v => (double)v).ToArray());
        float[] actual = c.ToArray<float>();
        // The old C the result may depend on: its lower triangle, mirrored.
        float[]? used = old is null ? null : [.. Enumerable.Range(0, D * D).Select(e => old[Math.Max(e / D, e % D) * D + Math.Min(e / D, e % D)])];
        LinalgData.AssertWithinBound(ToString(), actual, D, expected, Rows, Alpha, Beta, used);
        LinalgData.AssertSymmetric(ToString(), actual, D);
        BitExact(a, Bytes(x), $"{this}: A changed");
    }
}

/// <summary>Inputs and checks the linalg suites share.</summary>
public static class LinalgData
{
    /// <summary>
    /// Finite values of <paramref name="dtype"/>, as its bytes: signs, magnitudes over 2^-4 .. 2^4 (so sums cancel and
    /// roundings are real, but nothing overflows or underflows), one in sixteen an exact zero.
    /// </summary>
    public static byte[] Matrix(Random random, DType dtype, long count)
    {
        int size = dtype.SizeOf();
        var bytes = new byte[count * size];
        for (long i = 0; i < count; i++)
        {
            float value = random.Next(16) == 0 ? 0 : (float)((random.NextDouble() * 2 - 1) * Math.ScaleB(1.0, random.Next(-4, 5)));
            ulong bits = PrecisionReference.Convert(BitConverter.SingleToUInt32Bits(value), DType.Float32, dtype);
            BitConverter.GetBytes(bits).AsSpan(0, size).CopyTo(bytes.AsSpan((int)(i * size)));
        }
        return bytes;
    }

    public static float[] Floats(Random random, long count) =>
        [.. Enumerable.Range(0, (int)count).Select(_ => (float)((random.NextDouble() * 2 - 1) * 4))];

    /// <summary>
    /// Every element within <see cref="Tolerances.MatMulError"/> of the reference; where the reference is NaN or ±Inf
    /// (non-finite inputs), the same NaN-ness or the same infinity. <paramref name="old"/> is the old C each element
    /// may use (null with beta 0).
    /// </summary>
    public static void AssertWithinBound(string what, float[] actual, int columns, LinalgReference.Result expected, int k, float alpha, float beta, float[]? old)
    {
        Assert.Equal(expected.C.Length, actual.Length);
        for (int e = 0; e < actual.Length; e++)
        {
            double exact = expected.C[e], got = actual[e];
            if (!double.IsFinite(exact))
            {
                if (double.IsNaN(exact) ? !double.IsNaN(got) : got != exact)
                    Assert.Fail($"{what}: C[{e / columns}, {e % columns}] = {got:R}, reference {exact:R}");
                continue;
            }
            double allowed = Tolerances.MatMulError(k, alpha, expected.AbsoluteProducts[e], beta, old is null ? 0 : old[e]);
            if (!(Math.Abs(got - exact) <= allowed))
                Assert.Fail($"{what}: C[{e / columns}, {e % columns}] = {got:R}, reference {exact:R}, " +
                    $"|error| {Math.Abs(got - exact):E3} > bound {allowed:E3}");
        }
    }

    public static void AssertSymmetric(string what, float[] c, int d)
    {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++)
            {
                uint lower = BitConverter.SingleToUInt32Bits(c[i * d + j]), upper = BitConverter.SingleToUInt32Bits(c[j * d + i]);
                if (lower != upper) Assert.Fail($"{what}: C[{i}, {j}] = 0x{lower:X8} but C[{j}, {i}] = 0x{upper:X8}");
            }
    }

    /// <summary>The bytes of a float array (for writing a host array through the backend API).</summary>
    public static byte[] Bytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
