using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What <see cref="Moments.Update"/> must do on every backend: whatever the batch sizes, the sharding and the merge order,
/// stay within the derived bound (<see cref="MomentsErrorBound"/>) of the two-pass double reference; keep data with a large
/// mean accurate where the naive formula fails; propagate or skip non-finite values as documented; refuse bad batches
/// before the state changes.
/// </summary>
public abstract class MomentsParityTests(ITestOutputHelper output)
{
    protected abstract Device Device { get; }

    protected virtual int PropertyRuns => 60;

    private static readonly DType[] FloatTypes = [DType.Float32, DType.Float16, DType.BFloat16];

    [Fact]
    public void Updates_merged_in_any_partition_and_order_match_the_two_pass_reference()
    {
        _ = Device;   // skips (or fails) here, not inside the property
        var plans = from groups in Gen.Elements(1, 1, 2, 3)
                    from features in Gen.OneOf(Gen.Choose(1, 9), Gen.Elements(16, 17, 31, 33))
                    from dtype in Gen.Elements(FloatTypes)
                    from rows in Gen.OneOf(Gen.Choose(1, 20), Gen.Choose(21, 300))
                    from shards in Gen.Choose(1, 4)
                    from rank2 in Gen.Elements(false, true)
                    from roundTrip in Gen.Elements(false, true)
                    from diagonal in Gen.Elements(false, false, false, true)
                    from mean in Gen.Elements(0.0, 1.0, -3.5, 100.0, 1000.0)
                    from scale in Gen.Elements(1e-3, 1.0, 10.0)
                    from seed in Gen.Choose(0, int.MaxValue)
                    select new MomentsCase(groups, features, dtype, rows, shards, rank2 && groups == 1, roundTrip, diagonal, mean, scale, seed);
        // The shared case: random batches dealt to shards, round-tripped or not, merged in a random tree, then the bounds.
        Prop.ForAll(plans.ToArbitrary(), c => CaseAssert.Passes(c, Device)).Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    /// <summary>
    /// The stability test: mean 1e4, unit variance. The pipeline is within 1e-5 (max-norm relative); the naive
    /// <c>(Σ x x^T - N μ μ^T) / (N - 1)</c>, blocked and accumulated exactly as the pipeline is, is not (negative control).
    /// </summary>
    [Fact]
    public void A_mean_of_1e4_with_unit_variance_stays_within_1e_5_where_the_naive_formula_fails()
    {
        const int rows = 2048, features = 8, batchRows = 512;
        var data = MomentsData.Random(rows, 1, features, DType.Float32, seed: 17, mean: 1e4, scale: 1);
        var state = new Moments(features, device: Device);
        for (int first = 0; first < rows; first += batchRows)
        {
            using Tensor batch = data.Batch(first, batchRows, Device, rank2: true);
            state.Update(batch);
        }
        double[] x = data.Group(0);
        double[,] expected = MomentsReference.Covariance(x, features), actual = state.Covariance();
        double error = MomentsReference.MaxNormRelative(actual, expected);
        double[,] naive = NaiveFloat32(data), naiveDouble = NaiveDouble(x, features);
        double naiveError = MomentsReference.MaxNormRelative(naive, expected);
        output.WriteLine($"{Device.Spec}: [{rows}, {features}] mean 1e4 unit variance, batches of {batchRows}: max-norm relative error " +
            $"{error:E2} (Frobenius {MomentsErrorBound.FrobeniusRelative(actual, expected):E2}); naive Float32 {naiveError:E2}; " +
            $"naive double {MomentsReference.MaxNormRelative(naiveDouble, expected):E2}");
        Assert.True(error < Tolerances.MomentsStability, $"max-norm relative error {error:E3} >= {Tolerances.MomentsStability}");
        Assert.True(naiveError > Tolerances.MomentsStability,
            $"the naive formula's error {naiveError:E3} is below {Tolerances.MomentsStability}: the stability test no longer tells the methods apart");
        MomentsAssert.MatchesReference(state, data, null, Device.Kind, "mean 1e4");
    }

    /// <summary>Σ x x^T of the raw rows by the same Float32 Syrk blocks added into double, then the textbook subtraction.</summary>
    private double[,] NaiveFloat32(MomentsData data)
    {
        int d = data.Features;
        var sum = new double[d, d];
        for (int first = 0; first < data.Rows; first += Moments.ScatterBlockRows)
        {
            using Tensor block = data.Batch(first, Math.Min(Moments.ScatterBlockRows, data.Rows - first), Device, rank2: true);
            using Tensor product = Linalg.Syrk(block);
            using Tensor host = product.To(NativeTensor.Device.Cpu);
            float[] values = host.ToArray<float>();
            for (int j = 0; j < d; j++)
                for (int k = 0; k < d; k++) sum[j, k] += values[j * d + k];
        }
        return Subtract(sum, MomentsReference.Mean(data.Group(0), d), data.Rows);
    }

    private static double[,] NaiveDouble(double[] x, int d)
    {
        int n = x.Length / d;
        var sum = new double[d, d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                for (int k = 0; k < d; k++) sum[j, k] += x[i * d + j] * x[i * d + k];
        return Subtract(sum, MomentsReference.Mean(x, d), n);
    }

    private static double[,] Subtract(double[,] sum, double[] mean, int n)
    {
        int d = mean.Length;
        var covariance = new double[d, d];
        for (int j = 0; j < d; j++)
            for (int k = 0; k < d; k++) covariance[j, k] = (sum[j, k] - n * mean[j] * mean[k]) / (n - 1);
        return covariance;
    }

    [Fact]
    public void Correlation_matches_the_reference()
    {
        var data = MomentsData.Random(300, 2, 6, DType.Float32, seed: 3, mean: 5, scale: 2);
        var state = new Moments(6, 2, Device);
        using (Tensor batch = data.All(Device)) state.Update(batch);
        for (int g = 0; g < 2; g++)
        {
            double[,] expected = MomentsReference.Correlation(data.Group(g), 6), actual = state.Correlation(g);
            double[,] bound = MomentsErrorBound.Scatter(data.Group(g), 6, Device.Kind);
            double[,] m2 = MomentsReference.Scatter(data.Group(g), 6);
            for (int j = 0; j < 6; j++)
                for (int k = 0; k < 6; k++)
                {
                    // r = M2_jk / sqrt(M2_jj M2_kk) with each M2 within its bound (relative e_jk, e_j, e_k):
                    // |r~ - r| <= (|r| (1 - s) + e_jk) / s, s = sqrt((1 - e_j)(1 - e_k)); clamping to [-1, 1] only helps.
                    double scale = Math.Sqrt(m2[j, j] * m2[k, k]), s = Math.Sqrt((1 - bound[j, j] / m2[j, j]) * (1 - bound[k, k] / m2[k, k]));
                    double allowed = (Math.Abs(expected[j, k]) * (1 - s) + bound[j, k] / scale) / s;
                    Assert.True(Math.Abs(actual[j, k] - expected[j, k]) <= allowed, $"R[{j}, {k}] = {actual[j, k]} vs {expected[j, k]} (allowed {allowed:E2})");
                }
            Assert.All(Enumerable.Range(0, 6), j => Assert.Equal(1.0, actual[j, j]));
        }
    }

    /// <summary>A NaN (or ±Inf) in one feature of one row poisons that feature's mean, row and column, and nothing else; the row still counts.</summary>
    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void A_non_finite_value_propagates_to_its_feature_only(float bad)
    {
        const int rows = 150, d = 5, poisoned = 2;
        var data = MomentsData.Random(rows, 1, d, DType.Float32, seed: 8, mean: 3);
        data.Values[7 * d + poisoned] = bad;
        var state = new Moments(d, device: Device);
        using (Tensor first = data.Batch(0, 100, Device)) state.Update(first);
        using (Tensor second = data.Batch(100, 50, Device)) state.Update(second);
        Assert.Equal(rows, state.Count);
        double[] mean = state.Mean();
        double[,] covariance = state.Covariance(), expected = MomentsReference.Covariance(data.Group(0), d);
        double[,] bound = MomentsErrorBound.Scatter(data.Group(0), d, Device.Kind);
        for (int j = 0; j < d; j++)
        {
            Assert.Equal(j == poisoned, !double.IsFinite(mean[j]));
            for (int k = 0; k < d; k++)
            {
                if (j == poisoned || k == poisoned) Assert.False(double.IsFinite(covariance[j, k]), $"C[{j}, {k}] = {covariance[j, k]}");
                else Assert.True(Math.Abs(covariance[j, k] - expected[j, k]) <= bound[j, k] / (rows - 1), $"C[{j}, {k}]");
            }
        }
    }

    /// <summary>skipNonFiniteRows: rows with NaN or ±Inf in any group are left out and counted; the rest match the reference.</summary>
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.BFloat16)]
    public void Skipping_non_finite_rows_counts_them_and_matches_the_reference_on_the_rest(DType dtype)
    {
        const int rows = 260, groups = 2, d = 4;
        var data = MomentsData.Random(rows, groups, d, dtype, seed: 21, mean: -2);
        int[] bad = [0, 5, 6, 127, 128, 200, 259];
        float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity];
        for (int b = 0; b < bad.Length; b++) data.Values[(bad[b] * groups + b % groups) * d + b % d] = specials[b % specials.Length];
        var state = new Moments(d, groups, Device, skipNonFiniteRows: true);
        using (Tensor first = data.Batch(0, 129, Device)) state.Update(first);
        using (Tensor second = data.Batch(129, rows - 129, Device)) state.Update(second);
        Assert.Equal(bad.Length, state.NonFiniteRows);
        MomentsAssert.MatchesReference(state, data, [.. Enumerable.Range(0, rows).Except(bad)], Device.Kind, "skipping");
    }

    [Fact]
    public void A_batch_of_only_non_finite_rows_changes_only_the_skip_count()
    {
        var state = new Moments(3, device: Device, skipNonFiniteRows: true);
        using (Tensor good = MomentsData.Random(10, 1, 3, DType.Float32, seed: 1).All(Device)) state.Update(good);
        byte[] before = state.ToBytes();
        using (Tensor bad = MomentsData.Of([float.NaN, 0, 0, 1, float.PositiveInfinity, 2], 2, 1, 3).All(Device)) state.Update(bad);
        Assert.Equal(10, state.Count);
        Assert.Equal(2, state.NonFiniteRows);
        var expected = Moments.FromBytes(before);
        Assert.Equal(expected.Covariance(), state.Covariance());
    }

    /// <summary>
    /// On a device, full mode keeps the batch there: what comes back is each chunk's column-sum pairs (at most 64 chunks),
    /// the row flags when skipping, and each group's (hi, lo) scatter pair once — the same bytes for 8192 rows as for
    /// 16384, a few percent of either batch. Every scratch buffer is released again.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_device_batch_reads_back_only_sums_flags_and_scatter_pairs(bool skip)
    {
        Assert.SkipWhen(Device.Kind == DeviceKind.Cpu, "the cpu path reads its batch in place: nothing comes back from a device");
        const int groups = 2, d = 8, rowElements = groups * d;
        var read = new List<long>();
        foreach (int rows in (int[])[8192, 16384])
        {
            var data = MomentsData.Random(rows, groups, d, DType.Float32, seed: rows, mean: 50);
            if (skip) data.Values[3 * rowElements + 5] = float.NaN;
            var state = new Moments(d, groups, Device, skipNonFiniteRows: skip);
            using (Tensor batch = data.All(Device))
            {
                long live = Device.Backend.LiveBuffers;
                state.Update(batch);
                Assert.Equal(live, Device.Backend.LiveBuffers);   // every scratch buffer of the device path was released
            }
            long kept = rows - (skip ? 1 : 0), chunks = (kept + Moments.ColumnSumRows(kept) - 1) / Moments.ColumnSumRows(kept);
            long expected = chunks * rowElements * 2 * sizeof(float) + groups * 2L * d * d * sizeof(float) + (skip ? rows * sizeof(uint) : 0);
            Assert.Equal(expected, state.BytesReadBack);
            Assert.True(state.BytesReadBack < (long)rows * rowElements * sizeof(float) / 8, $"{state.BytesReadBack} bytes read back for a {rows}-row batch");
            read.Add(state.BytesReadBack - (skip ? rows * sizeof(uint) : 0));
            MomentsAssert.MatchesReference(state, data, skip ? [.. Enumerable.Range(0, rows).Where(r => r != 3)] : null, Device.Kind, $"{rows} rows");
        }
        Assert.Equal(read[0], read[1]);
    }

    public static TheoryData<string, long[], DType> BadBatches() => new()
    {
        { "one feature too many", [4, 6], DType.Float32 },
        { "one feature too few, rank 3", [4, 2, 4], DType.Float32 },
        { "one group too many", [4, 3, 5], DType.Float16 },
        { "rank 2 when there are 2 groups", [4, 10], DType.Float32 },
        { "rank 1", [10], DType.Float32 },
        { "rank 4", [4, 2, 5, 1], DType.Float32 },
        { "Int32 values", [4, 2, 5], DType.Int32 },
    };

    /// <summary>Each bad batch is refused, naming the batch and the shapes, and the state keeps its bytes.</summary>
    [Theory]
    [MemberData(nameof(BadBatches))]
    public void A_bad_batch_is_refused_before_the_state_changes(string rule, long[] shape, DType dtype)
    {
        var state = new Moments(5, 2, Device);
        using (Tensor good = MomentsData.Random(7, 2, 5, DType.Float32, seed: 2).All(Device)) state.Update(good);
        byte[] before = state.ToBytes();
        using Tensor batch = Tensor.Zeros(dtype, shape, Device);
        var e = Assert.Throws<ArgumentException>(() => state.Update(batch));
        Assert.Equal("batch", e.ParamName);
        Assert.Contains(dtype == DType.Int32 ? "Int32" : string.Join(", ", shape), e.Message);
        Assert.Equal(before, state.ToBytes());
        _ = rule;
    }

    [Fact]
    public void Null_disposed_and_foreign_batches_are_refused_before_the_state_changes()
    {
        var state = new Moments(3, device: Device);
        using (Tensor good = MomentsData.Random(4, 1, 3, DType.Float32, seed: 2).All(Device)) state.Update(good);
        byte[] before = state.ToBytes();
        Assert.Throws<ArgumentNullException>(() => state.Update(null!));
        Tensor disposed = MomentsData.Random(4, 1, 3, DType.Float32, seed: 2).All(Device);
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => state.Update(disposed));
        using Tensor foreign = MomentsData.Random(4, 1, 3, DType.Float32, seed: 2).All(Backends.CpuScalar);
        var e = Assert.Throws<ArgumentException>(() => state.Update(foreign));
        Assert.Equal("batch", e.ParamName);
        Assert.Equal(before, state.ToBytes());
    }

    [Fact]
    public void An_empty_batch_changes_nothing()
    {
        var state = new Moments(4, 2, Device);
        using (Tensor good = MomentsData.Random(9, 2, 4, DType.Float32, seed: 2).All(Device)) state.Update(good);
        byte[] before = state.ToBytes();
        using Tensor empty = Tensor.Zeros(DType.BFloat16, [0, 2, 4], Device);
        state.Update(empty);
        Assert.Equal(before, state.ToBytes());
    }
}

public sealed class CpuMomentsTests(ITestOutputHelper output) : MomentsParityTests(output)
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class OpenClMomentsTests(ITestOutputHelper output) : MomentsParityTests(output)
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 20;
}

public sealed class CudaMomentsTests(ITestOutputHelper output) : MomentsParityTests(output)
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}

/// <summary>The comparison every Moments test ends with: the shared <see cref="MomentsCheck"/>, as an xunit verdict.</summary>
public static class MomentsAssert
{
    /// <summary>The state against the reference over <paramref name="rows"/> of <paramref name="data"/> (all rows when null).</summary>
    public static void MatchesReference(Moments state, MomentsData data, IReadOnlyList<int>? rows, DeviceKind backend, string label)
    {
        if (MomentsCheck.MatchesReference(state, data, rows, backend) is { } failure) Assert.Fail($"{label}: {failure}");
    }
}
