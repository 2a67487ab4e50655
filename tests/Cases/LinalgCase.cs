using System.Runtime.InteropServices;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Cases.CaseBytes;

namespace NativeTensor.Cases;

/// <summary>
/// One <see cref="Linalg.MatMul"/> scenario: op(A) [M, K] times op(B) [K, N] from seeded random matrices of each dtype,
/// run on a device through the public API and checked element by element against <see cref="LinalgReference"/> within
/// <see cref="Tolerances.MatMulError"/>. With beta 0 the output starts as NaN (0xFF bytes), which must not show through.
/// </summary>
public sealed record MatMulCase(int M, int N, int K, bool TransposeA, bool TransposeB, DType AType, DType BType, float Alpha, float Beta, int Seed) : IOpCase
{
    public override string ToString() =>
        $"[{M}, {K}]{(TransposeA ? "^T" : "")} {AType} x [{K}, {N}]{(TransposeB ? "^T" : "")} {BType}, alpha {Alpha:R}, beta {Beta:R}, seed {Seed}";

    public string Op => "linalg.matmul";

    public string Name => ToString();

    public string Standard => "every element within Tolerances.MatMulError of LinalgReference";

    /// <summary>A and B read once, C written once (and read first, when beta is not 0): the least a product can move.</summary>
    public long MovedBytes => (long)M * K * AType.SizeOf() + (long)K * N * BType.SizeOf() + (Beta == 0 ? 1 : 2) * 4L * M * N;

    public long Flops => 2L * M * N * K;

    /// <summary>The inputs and the reference, computed once however many devices check the case (perf's timed shapes take seconds).</summary>
    private Lazy<(byte[] A, byte[] B, float[]? Old, LinalgReference.Result Expected)> Truth => _truth ??= new(() =>
    {
        var random = new Random(Seed);
        byte[] a = LinalgData.Matrix(random, AType, (long)M * K), b = LinalgData.Matrix(random, BType, (long)K * N);
        float[]? old = Beta == 0 ? null : LinalgData.Floats(random, (long)M * N);
        LinalgReference.Result expected = LinalgReference.MatMul(LinalgReference.Values(a, AType), TransposeA,
            LinalgReference.Values(b, BType), TransposeB, M, N, K, Alpha, Beta, old?.Select(x => (double)x).ToArray());
        return (a, b, old, expected);
    });

    private Lazy<(byte[] A, byte[] B, float[]? Old, LinalgReference.Result Expected)>? _truth;

    /// <summary>The product into a poisoned (beta 0) or old C; within the bound everywhere; A and B untouched.</summary>
    public string? Check(Device device)
    {
        (byte[] a, byte[] b, float[]? old, LinalgReference.Result expected) = Truth.Value;
        using Tensor left = FromBytes(AType, TransposeA ? [K, M] : [M, K], device, a);
        using Tensor right = FromBytes(BType, TransposeB ? [N, K] : [K, N], device, b);
        using Tensor c = old is null ? Poisoned(DType.Float32, [M, N], device) : OnDevice(old, [M, N], device);
        if (!ReferenceEquals(c, Linalg.MatMul(left, right, TransposeA, TransposeB, Alpha, Beta, c))) return "the output tensor passed in was not returned";
        return LinalgData.WithinBound(c.ToArray<float>(), N, expected, K, Alpha, Beta, old)
            ?? Differs(a, Bytes(left), "A changed", AType.SizeOf())
            ?? Differs(b, Bytes(right), "B changed", BType.SizeOf());
    }

    public PreparedCase Prepare(Device device)
    {
        var random = new Random(Seed);
        Tensor left = FromBytes(AType, TransposeA ? [K, M] : [M, K], device, LinalgData.Matrix(random, AType, (long)M * K));
        Tensor right = FromBytes(BType, TransposeB ? [N, K] : [K, N], device, LinalgData.Matrix(random, BType, (long)K * N));
        Tensor c = Beta == 0 ? Tensor.Empty(DType.Float32, [M, N], device) : OnDevice(LinalgData.Floats(random, (long)M * N), [M, N], device);
        return new PreparedCase(() => Linalg.MatMul(left, right, TransposeA, TransposeB, Alpha, Beta, c), left, right, c);
    }
}

/// <summary>
/// One <see cref="Linalg.Syrk"/> scenario: A [Rows, D] of a dtype, the old C (when beta is not 0) random and not
/// symmetric, so only its lower triangle may count. The result must be within the bound everywhere and its two
/// triangles bit-identical.
/// </summary>
public sealed record SyrkCase(int Rows, int D, DType AType, float Alpha, float Beta, int Seed) : IOpCase
{
    public override string ToString() => $"[{Rows}, {D}] {AType}, alpha {Alpha:R}, beta {Beta:R}, seed {Seed}";

    public string Op => "linalg.syrk";

    public string Name => ToString();

    public string Standard => "every element within Tolerances.MatMulError of LinalgReference, triangles bit-identical";

    /// <summary>A read once, C [D, D] written once (and read first, when beta is not 0).</summary>
    public long MovedBytes => (long)Rows * D * AType.SizeOf() + (Beta == 0 ? 1 : 2) * 4L * D * D;

    /// <summary>The multiply-adds of the lower triangle and the diagonal, all a symmetric product needs (the usual BLAS count).</summary>
    public long Flops => (long)Rows * D * (D + 1);

    private Lazy<(byte[] A, float[]? Old, LinalgReference.Result Expected)> Truth => _truth ??= new(() =>
    {
        var random = new Random(Seed);
        byte[] a = LinalgData.Matrix(random, AType, (long)Rows * D);
        float[]? old = Beta == 0 ? null : LinalgData.Floats(random, (long)D * D);
        return (a, old, LinalgReference.Syrk(LinalgReference.Values(a, AType), Rows, D, Alpha, Beta, old?.Select(v => (double)v).ToArray()));
    });

    private Lazy<(byte[] A, float[]? Old, LinalgReference.Result Expected)>? _truth;

    public string? Check(Device device)
    {
        (byte[] a, float[]? old, LinalgReference.Result expected) = Truth.Value;
        using Tensor x = FromBytes(AType, [Rows, D], device, a);
        using Tensor c = old is null ? Poisoned(DType.Float32, [D, D], device) : OnDevice(old, [D, D], device);
        if (!ReferenceEquals(c, Linalg.Syrk(x, Alpha, Beta, c))) return "the output tensor passed in was not returned";
        float[] actual = c.ToArray<float>();
        // The old C the result may depend on: its lower triangle, mirrored.
        float[]? used = old is null ? null : [.. Enumerable.Range(0, D * D).Select(e => old[Math.Max(e / D, e % D) * D + Math.Min(e / D, e % D)])];
        return LinalgData.WithinBound(actual, D, expected, Rows, Alpha, Beta, used)
            ?? LinalgData.Symmetric(actual, D)
            ?? Differs(a, Bytes(x), "A changed", AType.SizeOf());
    }

    public PreparedCase Prepare(Device device)
    {
        var random = new Random(Seed);
        Tensor x = FromBytes(AType, [Rows, D], device, LinalgData.Matrix(random, AType, (long)Rows * D));
        Tensor c = Beta == 0 ? Tensor.Empty(DType.Float32, [D, D], device) : OnDevice(LinalgData.Floats(random, (long)D * D), [D, D], device);
        return new PreparedCase(() => Linalg.Syrk(x, Alpha, Beta, c), x, c);
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
    public static string? WithinBound(float[] actual, int columns, LinalgReference.Result expected, int k, float alpha, float beta, float[]? old)
    {
        if (expected.C.Length != actual.Length) return $"{actual.Length} elements, the reference has {expected.C.Length}";
        for (int e = 0; e < actual.Length; e++)
        {
            double exact = expected.C[e], got = actual[e];
            if (!double.IsFinite(exact))
            {
                if (double.IsNaN(exact) ? !double.IsNaN(got) : got != exact)
                    return $"C[{e / columns}, {e % columns}] = {got:R}, reference {exact:R}";
                continue;
            }
            double allowed = Tolerances.MatMulError(k, alpha, expected.AbsoluteProducts[e], beta, old is null ? 0 : old[e]);
            if (!(Math.Abs(got - exact) <= allowed))
                return $"C[{e / columns}, {e % columns}] = {got:R}, reference {exact:R}, |error| {Math.Abs(got - exact):E3} > bound {allowed:E3}";
        }
        return null;
    }

    /// <summary>Null when the two triangles of <paramref name="c"/> are bit-identical; otherwise the first pair that is not.</summary>
    public static string? Symmetric(float[] c, int d)
    {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++)
            {
                uint lower = BitConverter.SingleToUInt32Bits(c[i * d + j]), upper = BitConverter.SingleToUInt32Bits(c[j * d + i]);
                if (lower != upper) return $"C[{i}, {j}] = 0x{lower:X8} but C[{j}, {i}] = 0x{upper:X8}";
            }
        return null;
    }

    /// <summary>The bytes of a float array (for writing a host array through the backend API).</summary>
    public static byte[] Bytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
