using NativeTensor.Runtime;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// Device checks of <c>kernels/linalg.cl</c> until the shared Linalg parity suite lands: a device's MatMul and Syrk,
/// through the public <see cref="Linalg"/> API, against the exact product computed here in double, within the error
/// bound the kernel's summation order gives (<see cref="ProductErrorBound"/>); Syrk's mirror images bit for bit and
/// equal to the MatMul of A^T and A; beta 0 never reading C (a NaN there must not come out); shapes on either side of
/// every tile edge (1, 2, 15, 16, 17, 63, 64, 65, 127, 200, 257) in each of m, n and k; all four transposes; every
/// Float32/Float16/BFloat16 pair; and, through the backend, a poisoned guard after C that no launch may touch.
/// </summary>
public abstract class LinalgBackendTests
{
    private const int GuardBytes = TestTensors.GuardBytes;

    protected abstract Device Device { get; }

    /// <summary>(m, n, k): each of the sizes in each position, tile edges crossed singly and together.</summary>
    private static readonly (int M, int N, int K)[] Shapes =
    [
        (1, 1, 1), (1, 1, 17), (2, 2, 2), (1, 64, 1), (64, 1, 64), (2, 65, 15), (15, 17, 16), (16, 16, 16), (17, 15, 15),
        (16, 17, 65), (17, 16, 63), (63, 63, 63), (63, 64, 65), (64, 64, 64), (65, 65, 65), (64, 63, 127), (65, 64, 1),
        (1, 65, 200), (127, 1, 63), (127, 127, 16), (65, 127, 17), (127, 65, 2), (200, 17, 64), (17, 200, 65),
        (200, 200, 1), (63, 200, 127), (200, 63, 257), (257, 1, 15), (1, 257, 257), (257, 16, 64), (16, 257, 63),
        (257, 65, 17), (65, 257, 2), (127, 257, 65), (257, 127, 127), (200, 257, 16), (257, 200, 200), (257, 257, 65),
        (15, 2, 257), (64, 65, 200),
    ];

    /// <summary>(alpha, beta) by case: beta 0 runs with C full of NaN, which must not reach the result.</summary>
    private static readonly (float Alpha, float Beta)[] Scalings = [(1, 0), (-0.5f, 0), (1.25f, 1), (2, -0.75f)];

    private static readonly DType[] FloatTypes = [DType.Float32, DType.Float16, DType.BFloat16];

    public static TheoryData<int, int, int, bool, bool> ShapesAndTransposes()
    {
        var data = new TheoryData<int, int, int, bool, bool>();
        foreach ((int m, int n, int k) in Shapes)
            foreach (bool transposeA in (bool[])[false, true])
                foreach (bool transposeB in (bool[])[false, true])
                    data.Add(m, n, k, transposeA, transposeB);
        return data;
    }

    public static TheoryData<DType, DType, bool, bool> DtypesAndTransposes()
    {
        var data = new TheoryData<DType, DType, bool, bool>();
        foreach (DType a in FloatTypes)
            foreach (DType b in FloatTypes)
                foreach (bool transposeA in (bool[])[false, true])
                    foreach (bool transposeB in (bool[])[false, true])
                        data.Add(a, b, transposeA, transposeB);
        return data;
    }

    public static TheoryData<int, int, DType> SyrkCases()
    {
        var data = new TheoryData<int, int, DType>();
        (int Rows, int Columns)[] shapes =
            [(1, 1), (1, 65), (17, 1), (16, 16), (200, 15), (63, 17), (2, 64), (65, 65), (257, 127), (127, 200), (15, 257)];
        foreach ((int rows, int columns) in shapes)
            foreach (DType dtype in FloatTypes)
                data.Add(rows, columns, dtype);
        return data;
    }

    [Theory]
    [MemberData(nameof(ShapesAndTransposes))]
    public void MatMul_float32_is_within_the_derived_bound(int m, int n, int k, bool transposeA, bool transposeB)
    {
        int index = Array.IndexOf(Shapes, (m, n, k)) * 4 + (transposeA ? 2 : 0) + (transposeB ? 1 : 0);
        (float alpha, float beta) = Scalings[index % Scalings.Length];
        CheckMatMul(DType.Float32, DType.Float32, m, n, k, transposeA, transposeB, alpha, beta, seed: index);
    }

    [Theory]
    [MemberData(nameof(DtypesAndTransposes))]
    public void MatMul_widens_every_input_dtype_exactly(DType a, DType b, bool transposeA, bool transposeB)
    {
        int seed = (int)a * 37 + (int)b * 7 + (transposeA ? 2 : 0) + (transposeB ? 1 : 0);
        CheckMatMul(a, b, 65, 63, 17, transposeA, transposeB, 1, 0, seed);
        CheckMatMul(a, b, 17, 127, 200, transposeA, transposeB, -0.75f, 1.5f, seed + 1);
    }

    [Theory]
    [MemberData(nameof(SyrkCases))]
    public void Syrk_is_within_the_bound_and_its_mirror_images_are_the_same_bits(int rows, int columns, DType dtype)
    {
        var random = new Random(rows * 1009 + columns * 17 + (int)dtype);
        (byte[] bytes, double[] values) = RandomMatrix(random, (long)rows * columns, dtype);
        using Tensor a = TestTensors.FromBytes(dtype, [rows, columns], Device, bytes);
        double[] transposed = Transpose(values, rows, columns);  // op(A) = A^T as [columns, rows]
        foreach ((float alpha, float beta) in (ReadOnlySpan<(float, float)>)[(1f, 0f), (-0.5f, 2f)])
        {
            // beta 0 runs over NaN; otherwise over an old C that is not symmetric, of which only the lower triangle counts.
            (byte[] oldBytes, double[] old) = beta == 0 ? NaNs((long)columns * columns) : RandomMatrix(random, (long)columns * columns, DType.Float32);
            using Tensor c = TestTensors.FromBytes(DType.Float32, [columns, columns], Device, oldBytes);
            Assert.Same(c, Linalg.Syrk(a, alpha, beta, c));
            float[] actual = c.ToArray<float>();
            string what = $"Syrk {dtype} [{rows}, {columns}], alpha {alpha}, beta {beta}";
            for (int i = 0; i < columns; i++)
                for (int j = 0; j < i; j++)
                    if (BitConverter.SingleToInt32Bits(actual[(long)i * columns + j]) != BitConverter.SingleToInt32Bits(actual[(long)j * columns + i]))
                        Assert.Fail($"{what}: C[{i}, {j}] = {actual[(long)i * columns + j]:R} but C[{j}, {i}] = {actual[(long)j * columns + i]:R}");
            double[] lowerOld = new double[old.Length];
            for (int i = 0; i < columns; i++)
                for (int j = 0; j < columns; j++) lowerOld[(long)i * columns + j] = old[(long)Math.Max(i, j) * columns + Math.Min(i, j)];
            AssertWithinBound(actual, transposed, transposed, columns, columns, rows, alpha, beta, lowerOld, what);

            if (beta != 0) continue;
            // The same sums in the same order: the MatMul of A^T and A gives the same bits.
            using Tensor product = Linalg.MatMul(a, a, transposeA: true, alpha: alpha);
            TestTensors.BitExact(TestTensors.Bytes(product), TestTensors.Bytes(c), $"{what}: against MatMul(A^T, A)");
        }
    }

    [Fact]
    public void No_launch_writes_past_C_and_every_element_of_C_is_written()
    {
        Backend backend = Device.Backend;
        foreach ((int m, int n, int k) in (ReadOnlySpan<(int, int, int)>)[(1, 1, 1), (65, 63, 17), (63, 65, 64), (130, 129, 33)])
        {
            var random = new Random(m + n + k);
            using DeviceBuffer a = Upload(backend, RandomMatrix(random, (long)m * k, DType.BFloat16).Bytes);
            using DeviceBuffer b = Upload(backend, RandomMatrix(random, (long)k * n, DType.Float32).Bytes);
            long payload = (long)m * n * sizeof(float);
            using DeviceBuffer c = Upload(backend, Poison(payload + GuardBytes));
            backend.MatMul(new MatMulShape(a, DType.BFloat16, true, b, DType.Float32, false, c, m, n, k), 1, 0);
            AssertWrittenAndGuarded(backend, c, payload, $"MatMul [{m}, {n}, {k}]");

            using DeviceBuffer s = Upload(backend, Poison((long)m * m * sizeof(float) + GuardBytes));
            backend.Syrk(a, DType.BFloat16, k, m, s, 1, 0);
            AssertWrittenAndGuarded(backend, s, (long)m * m * sizeof(float), $"Syrk [{k}, {m}]");
        }
    }

    [Fact]
    public void A_short_or_aliased_C_is_refused_before_anything_is_written()
    {
        Backend backend = Device.Backend;
        using DeviceBuffer a = Upload(backend, RandomMatrix(new Random(3), 16 * 16, DType.Float32).Bytes);
        using DeviceBuffer c = Upload(backend, Poison(16 * 16 * sizeof(float) - 1));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            backend.MatMul(new MatMulShape(a, DType.Float32, false, a, DType.Float32, false, c, 16, 16, 16), 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.Syrk(a, DType.Float32, 16, 16, c, 1, 0));
        Assert.Throws<ArgumentException>(() =>
            backend.MatMul(new MatMulShape(a, DType.Float32, false, a, DType.Float32, false, a, 8, 8, 8), 1, 0));
        var back = new byte[c.ByteCount];
        backend.Read(c, 0, back);
        Assert.Equal(Poison(back.Length), back);
    }

    /// <summary>One MatMul through the public API, C poisoned with NaN when beta is 0, checked element by element.</summary>
    private void CheckMatMul(DType aType, DType bType, int m, int n, int k, bool transposeA, bool transposeB, float alpha, float beta, int seed)
    {
        var random = new Random(seed);
        (byte[] aBytes, double[] aValues) = RandomMatrix(random, (long)m * k, aType);
        (byte[] bBytes, double[] bValues) = RandomMatrix(random, (long)k * n, bType);
        (byte[] cBytes, double[] old) = beta == 0 ? NaNs((long)m * n) : RandomMatrix(random, (long)m * n, DType.Float32);
        using Tensor a = TestTensors.FromBytes(aType, transposeA ? [k, m] : [m, k], Device, aBytes);
        using Tensor b = TestTensors.FromBytes(bType, transposeB ? [n, k] : [k, n], Device, bBytes);
        using Tensor c = TestTensors.FromBytes(DType.Float32, [m, n], Device, cBytes);
        Assert.Same(c, Linalg.MatMul(a, b, transposeA, transposeB, alpha, beta, c));
        // Rows of op(A) and columns of op(B), each as a contiguous run of k values.
        double[] left = transposeA ? Transpose(aValues, k, m) : aValues;
        double[] right = transposeB ? bValues : Transpose(bValues, k, n);
        AssertWithinBound(c.ToArray<float>(), left, right, m, n, k, alpha, beta, old,
            $"MatMul {aType} x {bType}, [{m}, {n}, {k}], transposes {transposeA}/{transposeB}, alpha {alpha}, beta {beta}");
    }

    /// <summary>
    /// Every C[i, j] against alpha * (row i of <paramref name="left"/> . row j of <paramref name="right"/>) + beta * old,
    /// summed in double, within <see cref="ProductErrorBound.Of"/>; beta 0 ignores old (NaN there).
    /// </summary>
    private static void AssertWithinBound(float[] actual, double[] left, double[] right, int m, int n, int k, float alpha, float beta,
        double[] old, string what)
    {
        int wrong = 0;
        var lines = new List<string>();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, magnitude = 0;
                for (int p = 0; p < k; p++)
                {
                    double product = left[(long)i * k + p] * right[(long)j * k + p];  // exact: 24 x 24 bits fit in 53
                    sum += product;
                    magnitude += Math.Abs(product);
                }
                double scaled = beta == 0 ? 0 : beta * old[(long)i * n + j];
                double exact = alpha * sum + scaled;
                double got = actual[(long)i * n + j];
                double bound = ProductErrorBound.Of(k, alpha, magnitude, scaled);
                if (Math.Abs(got - exact) <= bound) continue;  // false for NaN
                if (wrong++ < 5) lines.Add($"C[{i}, {j}] = {got:R}, exact {exact:R}, off by {Math.Abs(got - exact):E3} > bound {bound:E3}");
            }
        if (wrong > 0) Assert.Fail($"{what}: {wrong} of {(long)m * n} elements outside the bound; {string.Join("; ", lines)}");
    }

    private static void AssertWrittenAndGuarded(Backend backend, DeviceBuffer c, long payload, string what)
    {
        var back = new byte[c.ByteCount];
        backend.Read(c, 0, back);
        Assert.True(back.AsSpan((int)payload).SequenceEqual(Poison(GuardBytes)), $"{what}: the guard after C was written");
        // Finite inputs and beta 0: a NaN left in C is a poisoned element no thread wrote.
        for (long e = 0; e < payload / sizeof(float); e++)
            Assert.False(float.IsNaN(BitConverter.ToSingle(back, (int)(e * sizeof(float)))), $"{what}: C element {e} was never written");
    }

    /// <summary>Values uniform in [-1, 1), rounded to <paramref name="dtype"/>, as raw bytes and as their exact values.</summary>
    private static (byte[] Bytes, double[] Values) RandomMatrix(Random random, long count, DType dtype)
    {
        var bytes = new byte[count * dtype.SizeOf()];
        var values = new double[count];
        for (long i = 0; i < count; i++)
        {
            float v = random.NextSingle() * 2 - 1;
            switch (dtype)
            {
                case DType.Float32:
                    BitConverter.TryWriteBytes(bytes.AsSpan((int)(i * 4)), v);
                    values[i] = v;
                    break;
                case DType.Float16:
                    BitConverter.TryWriteBytes(bytes.AsSpan((int)(i * 2)), BitConverter.HalfToUInt16Bits((Half)v));
                    values[i] = (double)(Half)v;
                    break;
                default:
                    ushort bits = BFloat16.RoundBits(BitConverter.SingleToUInt32Bits(v));
                    BitConverter.TryWriteBytes(bytes.AsSpan((int)(i * 2)), bits);
                    values[i] = BitConverter.UInt32BitsToSingle((uint)bits << 16);
                    break;
            }
        }
        return (bytes, values);
    }

    /// <summary>A [columns, rows] copy of a row-major [rows, columns] matrix.</summary>
    private static double[] Transpose(double[] values, int rows, int columns)
    {
        var result = new double[values.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++) result[(long)c * rows + r] = values[(long)r * columns + c];
        return result;
    }

    private static (byte[] Bytes, double[] Values) NaNs(long count)
    {
        var values = new double[count];
        Array.Fill(values, double.NaN);
        return (Poison(count * sizeof(float)), values);
    }

    private static byte[] Poison(long bytes)
    {
        var poison = new byte[bytes];
        Array.Fill(poison, TestTensors.Poison);
        return poison;
    }

    private static DeviceBuffer Upload(Backend backend, byte[] bytes)
    {
        DeviceBuffer buffer = backend.Allocate(bytes.Length);
        backend.Write(buffer, 0, bytes);
        return buffer;
    }
}

/// <summary>
/// The error bound of linalg.cl's C = alpha * sum_p a_ip b_pj + beta * c. The kernel sums the k products by a chain of
/// fused multiply-adds in order (one rounding each), then rounds alpha * sum, then adds beta * c by one more FMA, so
/// each product carries k + 2 roundings and beta * c one: |C - exact| &lt;= gamma_(k+2) |alpha| sum_p |a_ip b_pj| +
/// u |beta c|, with u = 2^-24 and gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability of Numerical Algorithms,
/// 2nd ed., §3.1, Lemma 3.1 and (3.4) for inner products). The double reference has its own, far smaller, error, the
/// same bound with u = 2^-53, which is added so that the comparison is between the kernel and the exact value.
/// </summary>
internal static class ProductErrorBound
{
    /// <summary>The unit roundoff of binary32, round to nearest.</summary>
    public const double Unit = 1.0 / (1 << 24);

    private const double DoubleUnit = 1.0 / (1L << 53);

    public static double Gamma(int n, double unit = Unit) => n * unit / (1 - n * unit);

    /// <param name="k">Terms in the sum.</param>
    /// <param name="alpha">The scale of the sum.</param>
    /// <param name="magnitude">sum_p |a_ip b_pj|, exact or nearly (summed in double).</param>
    /// <param name="scaled">beta * c, 0 when beta is 0.</param>
    public static double Of(int k, double alpha, double magnitude, double scaled) =>
        Gamma(k + 2) * Math.Abs(alpha) * magnitude + Unit * Math.Abs(scaled)
        + Gamma(k + 2, DoubleUnit) * (Math.Abs(alpha) * magnitude + Math.Abs(scaled));
}

/// <summary><see cref="LinalgBackendTests"/> on the first OpenCL device (PoCL in CI).</summary>
public sealed class OpenClLinalgTests : LinalgBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);
}

/// <summary><see cref="LinalgBackendTests"/> on the first CUDA device; skipped (visibly) where there is none.</summary>
public sealed class CudaLinalgTests : LinalgBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
