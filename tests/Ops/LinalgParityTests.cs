using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What every backend must do for <see cref="Linalg"/>: on random shapes (every register-tile and cache-block edge),
/// every transpose pair and every input dtype pair, stay within the derived error bound of the double reference
/// (<see cref="Tolerances.MatMulError"/>); never let a NaN in C show through when beta is 0; give Syrk results whose
/// triangles are bit-identical; touch nothing past C; and handle empty and k = 0 products through the public API.
/// </summary>
public abstract class LinalgParityTests
{
    protected abstract Device Device { get; }

    protected virtual int PropertyRuns => 60;

    /// <summary>
    /// An extent of the cache-block cases as this backend runs them: as written, past the CPU GEMM's cache blocks; an
    /// emulated device caps them (still several of its tiles and a tail), same cases.
    /// </summary>
    protected virtual int CacheBlockExtent(int extent) => extent;

    private static readonly DType[] Inputs = [DType.Float32, DType.Float16, DType.BFloat16];
    private static readonly float[] Alphas = [1f, -1f, 0.5f, 3f, -0.125f, 0f];
    private static readonly float[] Betas = [0f, 1f, -1f, 0.5f, -2.5f];

    /// <summary>Mostly 1..257 (every tail of every tile width), one in six 300..700 (several cache blocks and cores).</summary>
    private static Gen<int> Dimension =>
        from large in Gen.Choose(0, 5)
        from n in large == 0 ? Gen.Choose(300, 700) : Gen.Choose(1, 257)
        select n;

    [Fact]
    public void MatMul_on_random_shapes_transposes_dtypes_and_scalars_stays_within_the_derived_bound()
    {
        Device device = Device;   // skips (or fails) here, not inside the property, when the backend is missing
        var cases = from m in Dimension
                    from n in Dimension
                    from k in Dimension
                    from transposeA in Gen.Elements(false, true)
                    from transposeB in Gen.Elements(false, true)
                    from aType in Gen.Elements(Inputs)
                    from bType in Gen.Elements(Inputs)
                    from alpha in Gen.Elements(Alphas)
                    from beta in Gen.Elements(Betas)
                    from seed in Gen.Choose(0, int.MaxValue)
                    select new MatMulCase(m, n, k, transposeA, transposeB, aType, bType, alpha, beta, seed);
        Prop.ForAll(cases.ToArbitrary(), c => CaseAssert.Passes(c, device)).Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    [Fact]
    public void Syrk_on_random_shapes_dtypes_and_scalars_is_symmetric_and_within_the_derived_bound()
    {
        Device device = Device;
        var cases = from rows in Dimension
                    from d in Dimension
                    from aType in Gen.Elements(Inputs)
                    from alpha in Gen.Elements(Alphas)
                    from beta in Gen.Elements(Betas)
                    from seed in Gen.Choose(0, int.MaxValue)
                    select new SyrkCase(rows, d, aType, alpha, beta, seed);
        Prop.ForAll(cases.ToArbitrary(), c => CaseAssert.Passes(c, device)).Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    /// <summary>m from 1 to 257 against n from 257 down to 1: every row and column tail of every tile shape, both cores.</summary>
    [Fact]
    public void Every_row_and_column_count_up_to_257_stays_within_the_bound()
    {
        Device device = Device;
        for (int s = 1; s <= 257; s++)
            CaseAssert.Passes(new MatMulCase(s, 258 - s, 1 + s % 23, s % 2 == 1, s % 4 >= 2, Inputs[s % 3], Inputs[s / 3 % 3], s % 5 == 0 ? 1 : -0.75f, s % 7 == 0 ? 0.5f : 0, s),
                device);
    }

    /// <summary>Shapes that cross the CPU's depth (256) and width (512) blocks, its row panels and the parallel split.</summary>
    [Theory]
    [InlineData(300, 513, 513, false, false)]
    [InlineData(129, 1100, 70, false, true)]
    [InlineData(700, 33, 1030, true, false)]
    [InlineData(1, 1025, 600, true, true)]
    [InlineData(515, 1, 257, false, false)]
    public void Products_across_cache_blocks_stay_within_the_bound(int m, int n, int k, bool transposeA, bool transposeB)
    {
        (m, n, k) = (CacheBlockExtent(m), CacheBlockExtent(n), CacheBlockExtent(k));
        CaseAssert.Passes(new MatMulCase(m, n, k, transposeA, transposeB, DType.Float32, DType.Float32, 1, 0, m + n + k), Device);
        CaseAssert.Passes(new MatMulCase(m, n, k, transposeA, transposeB, DType.BFloat16, DType.Float16, -0.5f, 1, m * n), Device);
    }

    [Theory]
    [InlineData(1030, 300)]
    [InlineData(600, 545)]
    [InlineData(3, 700)]
    public void Syrk_across_cache_blocks_is_symmetric_and_within_the_bound(int rows, int d)
    {
        (rows, d) = (CacheBlockExtent(rows), CacheBlockExtent(d));
        CaseAssert.Passes(new SyrkCase(rows, d, DType.Float32, 1, 0, rows), Device);
        CaseAssert.Passes(new SyrkCase(rows, d, DType.Float16, 0.25f, -1, d), Device);
    }

    /// <summary>
    /// A NaN or ±Inf in A reaches exactly the elements of C whose sums contain it, as in the reference; the zero padding
    /// of edge tiles (0 * Inf = NaN there) never reaches C.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void Non_finite_inputs_spoil_only_the_sums_they_enter(bool transposeA, bool transposeB)
    {
        Device device = Device;
        const int m = 37, n = 45, k = 29;
        var random = new Random(3);
        byte[] a = LinalgData.Matrix(random, DType.Float32, m * k), b = LinalgData.Matrix(random, DType.Float32, k * n);
        (int Row, int Depth, float Value)[] specials = [(5, 3, float.PositiveInfinity), (36, 28, float.NaN), (20, 0, float.NegativeInfinity)];
        foreach ((int row, int depth, float value) in specials)
            BitConverter.GetBytes(value).CopyTo(a, 4 * (transposeA ? depth * m + row : row * k + depth));
        using Tensor left = FromBytes(DType.Float32, transposeA ? [k, m] : [m, k], device, a);
        using Tensor right = FromBytes(DType.Float32, transposeB ? [n, k] : [k, n], device, b);
        using Tensor c = Linalg.MatMul(left, right, transposeA, transposeB);
        LinalgReference.Result expected = LinalgReference.MatMul(LinalgReference.Values(a, DType.Float32), transposeA,
            LinalgReference.Values(b, DType.Float32), transposeB, m, n, k, 1, 0, null);
        float[] actual = c.ToArray<float>();
        LinalgAssert.WithinBound("non-finite A", actual, n, expected, k, 1, 0, null);
        int spoiled = actual.Count(x => !float.IsFinite(x));
        Assert.True(spoiled > 0 && spoiled <= specials.Length * n, $"{spoiled} non-finite elements");
    }

    /// <summary>The kernels run with C in a buffer longer than C: every byte after it must keep its poison.</summary>
    [Theory]
    [InlineData(1, 1, 1, false, false, 0f)]
    [InlineData(17, 33, 5, true, false, 1f)]
    [InlineData(14, 32, 256, false, true, 0f)]
    [InlineData(29, 65, 257, true, true, -0.5f)]
    [InlineData(257, 255, 129, false, false, 0f)]
    public void MatMul_writes_nothing_past_c(int m, int n, int k, bool transposeA, bool transposeB, float beta)
    {
        Device device = Device;
        Backend backend = device.Backend;
        var random = new Random(m * 1000 + n);
        byte[] a = LinalgData.Matrix(random, DType.BFloat16, (long)m * k), b = LinalgData.Matrix(random, DType.Float32, (long)k * n);
        using Tensor left = FromBytes(DType.BFloat16, transposeA ? [k, m] : [m, k], device, a);
        using Tensor right = FromBytes(DType.Float32, transposeB ? [n, k] : [k, n], device, b);
        float[] old = LinalgData.Floats(random, (long)m * n);
        int bytes = m * n * 4;
        using DeviceBuffer c = backend.Allocate(bytes + GuardBytes);
        backend.Write(c, 0, [.. LinalgData.Bytes(old), .. Enumerable.Repeat(Poison, GuardBytes)]);
        backend.MatMul(new MatMulShape(left.Buffer, DType.BFloat16, transposeA, right.Buffer, DType.Float32, transposeB, c, m, n, k), 1.5f, beta);
        var after = new byte[bytes + GuardBytes];
        backend.Read(c, 0, after);
        Assert.True(after.AsSpan(bytes).IndexOfAnyExcept(Poison) < 0, "matmul wrote past C");
        LinalgReference.Result expected = LinalgReference.MatMul(LinalgReference.Values(a, DType.BFloat16), transposeA,
            LinalgReference.Values(b, DType.Float32), transposeB, m, n, k, 1.5, beta, [.. old.Select(x => (double)x)]);
        LinalgAssert.WithinBound($"guarded [{m}, {n}, {k}]", [.. System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(after.AsSpan(0, bytes))],
            n, expected, k, 1.5f, beta, old);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(9, 15)]
    [InlineData(300, 33)]
    [InlineData(40, 257)]
    public void Syrk_writes_nothing_past_c(int rows, int d)
    {
        Device device = Device;
        Backend backend = device.Backend;
        byte[] a = LinalgData.Matrix(new Random(rows + d), DType.Float16, (long)rows * d);
        using Tensor x = FromBytes(DType.Float16, [rows, d], device, a);
        int bytes = d * d * 4;
        using DeviceBuffer c = backend.Allocate(bytes + GuardBytes);
        backend.Write(c, 0, Enumerable.Repeat(Poison, bytes + GuardBytes).ToArray());
        backend.Syrk(x.Buffer, DType.Float16, rows, d, c, 2, 0);
        var after = new byte[bytes + GuardBytes];
        backend.Read(c, 0, after);
        Assert.True(after.AsSpan(bytes).IndexOfAnyExcept(Poison) < 0, "syrk wrote past C");
        float[] actual = [.. System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(after.AsSpan(0, bytes))];
        LinalgAssert.WithinBound($"guarded syrk [{rows}, {d}]", actual, d,
            LinalgReference.Syrk(LinalgReference.Values(a, DType.Float16), rows, d, 2, 0, null), rows, 2, 0, null);
        LinalgAssert.Symmetric($"guarded syrk [{rows}, {d}]", actual, d);
    }

    /// <summary>k = 0 is an empty sum (C = beta * C, zeros with beta 0 whatever C held); an empty C is left as it is.</summary>
    [Fact]
    public void Empty_sums_and_empty_outputs_follow_blas()
    {
        Device device = Device;
        using Tensor a0 = Tensor.Empty(DType.Float16, [3, 0], device), b0 = Tensor.Empty(DType.Float32, [0, 4], device);
        using Tensor nan = Poisoned(DType.Float32, [3, 4], device);
        Linalg.MatMul(a0, b0, c: nan);
        Assert.All(nan.ToArray<float>(), x => Assert.Equal(0f, x));
        float[] old = [.. Enumerable.Range(0, 12).Select(i => i - 5.5f)];
        using Tensor c = OnDevice(old, [3, 4], device);
        Linalg.MatMul(a0, b0, alpha: 7, beta: -2, c: c);
        Assert.Equal(old.Select(x => -2 * x), c.ToArray<float>());
        using Tensor fresh = Linalg.MatMul(a0, b0);
        Assert.Equal([3L, 4L], fresh.Shape);
        Assert.All(fresh.ToArray<float>(), x => Assert.Equal(0f, x));

        using Tensor wide = Tensor.Empty(DType.BFloat16, [0, 5], device), tall = Tensor.Empty(DType.Float32, [5, 0], device);
        using Tensor none = Linalg.MatMul(wide, wide, transposeB: true);
        Assert.Equal([0L, 0L], none.Shape);
        using Tensor rows = Linalg.MatMul(tall, wide);
        Assert.Equal([5L, 5L], rows.Shape);
        Assert.All(rows.ToArray<float>(), x => Assert.Equal(0f, x));

        using Tensor noRows = Tensor.Empty(DType.Float32, [0, 3], device);
        using Tensor scatter = OnDevice([.. old.Take(9)], [3, 3], device);
        Linalg.Syrk(noRows, beta: 0.5f, c: scatter);
        // Only the old C's lower triangle is read (as with rows), so an asymmetric C comes back symmetric.
        float[] lower = [.. old.Take(9)];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < i; j++) lower[j * 3 + i] = lower[i * 3 + j];
        Assert.NotEqual(old.Take(9), lower);
        Assert.Equal(lower.Select(x => 0.5f * x), scatter.ToArray<float>());
        using Tensor kept = OnDevice([.. old.Take(9)], [3, 3], device);
        Linalg.Syrk(noRows, beta: 1, c: kept);
        Assert.Equal(lower, kept.ToArray<float>());
        using Tensor noColumns = Tensor.Empty(DType.Float16, [4, 0], device);
        using Tensor empty = Linalg.Syrk(noColumns);
        Assert.Equal([0L, 0L], empty.Shape);
    }

    /// <summary>Without c the product is allocated on A's device and equals the one written into a given c.</summary>
    [Fact]
    public void A_new_output_equals_a_given_one()
    {
        Device device = Device;
        var random = new Random(9);
        using Tensor a = FromBytes(DType.Float32, [70, 40], device, LinalgData.Matrix(random, DType.Float32, 2800));
        using Tensor b = FromBytes(DType.BFloat16, [40, 90], device, LinalgData.Matrix(random, DType.BFloat16, 3600));
        using Tensor fresh = Linalg.MatMul(a, b, alpha: 2);
        using Tensor given = Poisoned(DType.Float32, [70, 90], device);
        Linalg.MatMul(a, b, alpha: 2, c: given);
        Assert.Equal(device, fresh.Device);
        Assert.Equal(DType.Float32, fresh.DType);
        BitExact(Bytes(given), Bytes(fresh), "a new output and a given one");
        using Tensor gram = Linalg.Syrk(a);
        Assert.Equal([40L, 40L], gram.Shape);
    }
}

public sealed class CpuLinalgTests : LinalgParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class CpuScalarLinalgTests : LinalgParityTests
{
    protected override Device Device => Backends.CpuScalar;
}

public sealed class Cpu128LinalgTests : LinalgParityTests
{
    protected override Device Device => Backends.Cpu128;
}

public sealed class Cpu256LinalgTests : LinalgParityTests
{
    protected override Device Device => Backends.Cpu256;
}

public sealed class OpenClLinalgParityTests : LinalgParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 20;
}

public sealed class CudaLinalgParityTests : LinalgParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
