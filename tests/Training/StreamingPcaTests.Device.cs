using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;
using NativeTensor.Training;
using static NativeTensor.Tests.Training.PlantedSpectrum;

namespace NativeTensor.Tests.Training;

/// <summary>
/// <see cref="StreamingPca"/> on a device: the Float32 path <see cref="StreamingPca.TopK(Tensor, int)"/> against its derived
/// bound (<see cref="Tolerances.PcaSingleResidual"/>), and the <see cref="Moments"/> overloads, which iterate on the state's
/// device and refine in double, against the double path's contract (<see cref="Tolerances.PcaDoubleResidual"/>) and the
/// issue's targets.
/// </summary>
public abstract class StreamingPcaDeviceTests
{
    protected abstract Device Device { get; }

    /// <summary>The largest d of the Float32 path's random cases: an emulated device takes smaller matrices, same spectra.</summary>
    protected virtual int LargestFloat32Features => 160;

    /// <summary>A Float32 copy of <paramref name="a"/> on the device, and the double matrix of its values (what the solver sees).</summary>
    private Tensor Upload(double[,] a, out double[,] seen)
    {
        int d = a.GetLength(0);
        float[] values = Single(a);
        seen = Widened(values, d);
        using Tensor host = Tensor.FromArray(values, d, d);
        return host.To(Device);
    }

    /// <summary>
    /// Checks one Float32 result against the planted pairs it should approximate: the guaranteed residual against the matrix it
    /// was given, and through it (plus the rounding of the planted matrix to Float32, ‖ΔA‖_2 &lt;= ‖ΔA‖_F) each value by Weyl and
    /// each direction by Davis–Kahan. <paramref name="expected"/>[i] lists the planted directions vector i may lie in (one, or
    /// a cluster's), with their eigenvalue range and the gap to the rest of the spectrum.
    /// </summary>
    private static void AssertWithinSingleBound(double[,] planted, double[,] seen, (double[] Values, double[,] Vectors) result,
        double[][] q, IReadOnlyList<(int[] Directions, double Low, double High, double Gap)> expected, int p)
    {
        int d = seen.GetLength(0);
        double rho = Tolerances.PcaSingleResidual(d, p, Frobenius(seen));
        double rounding = 0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) rounding += Math.Pow(seen[i, j] - planted[i, j], 2);
        double moved = rho + Math.Sqrt(rounding);
        for (int i = 0; i < expected.Count; i++)
        {
            (int[] directions, double low, double high, double gap) = expected[i];
            double[] v = Row(result.Vectors, i);
            double lambda = result.Values[i];
            Assert.True(Residual(seen, v, lambda) <= rho, $"pair {i}: residual {Residual(seen, v, lambda):E3} above the bound {rho:E3}");
            Assert.True(lambda >= low - moved && lambda <= high + moved, $"value {i} = {lambda:R}, planted [{low:R}, {high:R}] ± {moved:E3}");
            double angle = AngleToSpan(v, directions.Select(j => q[j]));
            Assert.True(angle <= Tolerances.PcaAngleBound(moved, gap), $"vector {i}: {angle:E3} rad from its planted span, bound {Tolerances.PcaAngleBound(moved, gap):E3}");
            Assert.True(Math.Abs(Dot(v, v) - 1) <= Tolerances.PcaOrthonormality, $"vector {i} is not unit");
            Assert.True(moved <= gap / 100, $"pair {i}: the bound {moved:E3} must stay below a hundredth of the gap {gap} to mean something");
        }
        AssertSigned(result.Vectors);
    }

    /// <summary>
    /// Random sizes, seeds and k: a spectrum of 10, 5, 2, 1 over a floor in [0, 1e-3), with a -8 that makes it indefinite (so the
    /// proven Gershgorin interval, not a semidefinite one, is what the Float32 path works with).
    /// </summary>
    [Fact]
    public void Float32_path_recovers_planted_spectra_within_the_derived_bound()
    {
        Device device = Device;
        var cases = from d in Gen.Choose(30, LargestFloat32Features)
                    from k in Gen.Choose(1, 4)
                    from seed in Gen.Choose(0, int.MaxValue)
                    select (d, k, seed);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            (int d, int k, int seed) = c;
            double[][] q = Orthogonal(d, seed);
            var random = new Random(seed);
            double[] spectrum = [10, 5, 2, 1, -8, .. Enumerable.Range(5, d - 5).Select(_ => 1e-3 * random.NextDouble())];
            double[,] planted = Planted(q, spectrum);
            using Tensor matrix = Upload(planted, out double[,] seen);
            var result = StreamingPca.TopK(matrix, k);
            Assert.Equal(k, result.Values.Length);
            double[] gaps = [5, 3, 1, 1 - 1e-3];
            AssertWithinSingleBound(planted, seen, result, q, [.. Enumerable.Range(0, k).Select(i => (new[] { i }, spectrum[i], spectrum[i], gaps[i]))], Block(d, k));
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(10));
    }

    /// <summary>k = d: the block is the whole space, so Jacobi on the Float32 values in double answers, every pair.</summary>
    [Fact]
    public void K_equal_to_d_gives_every_pair_descending_and_an_orthonormal_basis()
    {
        const int d = 20;
        double[][] q = Orthogonal(d, seed: 2);
        double[] spectrum = [.. Enumerable.Range(0, d).Select(i => 4.0 - i * 0.37)];
        double[,] planted = Planted(q, spectrum);
        using Tensor matrix = Upload(planted, out double[,] seen);
        var result = StreamingPca.TopK(matrix, d);
        AssertWithinSingleBound(planted, seen, result, q, [.. Enumerable.Range(0, d).Select(i => (new[] { i }, spectrum[i], spectrum[i], 0.37))], d);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                Assert.True(Math.Abs(Dot(Row(result.Vectors, i), Row(result.Vectors, j)) - (i == j ? 1 : 0)) <= Tolerances.PcaOrthonormality, $"V V^T [{i}, {j}]");
    }

    /// <summary>
    /// The k-th value opens a cluster of three within 2e-6: the vector for it is only determined up to the cluster's span, which
    /// it must be close to (measured to the rest of the spectrum); the values stay within the bound, and the block, which
    /// holds the whole cluster, converges without growing.
    /// </summary>
    [Fact]
    public void A_nearly_degenerate_cluster_at_the_kth_value_gives_a_vector_in_its_span()
    {
        const int d = 120;
        double[][] q = Orthogonal(d, seed: 21);
        var random = new Random(22);
        double[] spectrum = [10, 5, 2, 2 - 1e-6, 2 - 2e-6, .. Enumerable.Range(5, d - 5).Select(_ => 1e-3 * random.NextDouble())];
        double[,] planted = Planted(q, spectrum);
        using Tensor matrix = Upload(planted, out double[,] seen);
        var result = StreamingPca.TopK(matrix, 3);
        AssertWithinSingleBound(planted, seen, result, q, [([0], 10, 10, 5), ([1], 5, 5, 3), ([2, 3, 4], 2 - 2e-6, 2, 2 - 1e-3)], Block(d, 3));
    }

    [Fact]
    public void The_same_matrix_gives_the_same_bits()
    {
        double[][] q = Orthogonal(60, seed: 3);
        using Tensor matrix = Upload(Planted(q, Spectrum(60, seed: 4)), out _);
        var first = StreamingPca.TopK(matrix, 4);
        var second = StreamingPca.TopK(matrix, 4);
        Assert.Equal(first.Values, second.Values);
        Assert.Equal(first.Vectors, second.Vectors);
    }

    /// <summary>Entries beyond 2^60 would overflow the Float32 products: the host solves in double, to the double path's accuracy.</summary>
    [Fact]
    public void A_matrix_outside_the_Float32_range_is_solved_on_the_host()
    {
        const int d = 40;
        double[][] q = Orthogonal(d, seed: 9);
        double scale = Math.ScaleB(1, StreamingPca.SingleRangeExponent + 10);
        double[] spectrum = [.. Spectrum(d, seed: 10).Select(x => x * scale)];
        double[,] planted = Planted(q, spectrum);
        using Tensor matrix = Upload(planted, out double[,] seen);
        var result = StreamingPca.TopK(matrix, 3);
        double bound = Tolerances.PcaDoubleResidual(d, Block(d, 3), Frobenius(seen));
        for (int i = 0; i < 3; i++)
            Assert.True(Residual(seen, Row(result.Vectors, i), result.Values[i]) <= bound, $"pair {i} is not converged to the double bound");
    }

    /// <summary>d = 256 (at <see cref="StreamingPca.DeviceMinimumFeatures"/>): the state's device iterates, the host refines.</summary>
    [Fact]
    public void TopK_of_moments_on_the_device_keeps_the_double_accuracy()
    {
        Device device = Device;
        const int d = StreamingPca.DeviceMinimumFeatures, n = 512;
        double[][] q = Orthogonal(d, seed: 8);
        double[] spectrum = [10, 5, 2, .. Enumerable.Repeat(1e-2, d - 3)];
        MomentsData data = PlantedRows(q, spectrum, n);
        var state = new Moments(d, device: device);
        for (int first = 0; first < n; first += 200)
        {
            using Tensor batch = data.Batch(first, Math.Min(200, n - first), device, rank2: true);
            state.Update(batch);
        }
        var (values, vectors) = StreamingPca.TopK(state, 0, 3);
        double[,] covariance = state.Covariance(0);
        AssertDoubleContract(covariance, values, vectors, Block(d, 3));
        var (hostValues, _) = StreamingPca.TopK(covariance, 3);
        double drift = Drift(data, device.Kind);
        for (int i = 0; i < 3; i++)
        {
            double expected = spectrum[i] * n / (n - 1);
            Assert.True(Math.Abs(values[i] - hostValues[i]) <= Tolerances.PcaEigenvalueRelative * expected, $"value {i}: {values[i]:R} here, {hostValues[i]:R} on the host");
            Assert.True(Math.Abs(values[i] - expected) <= drift + Tolerances.PcaEigenvalueRelative * expected, $"value {i} = {values[i]:R}, planted {expected:R}");
            Assert.True(Angle(Row(vectors, i), q[i]) < Tolerances.PcaAngle, $"vector {i}: {Angle(Row(vectors, i), q[i]):E2} rad");
        }
        Assert.True(drift / 3 < Tolerances.PcaAngle, "the bound itself must leave the angle target meaningful (gap 3)");
        AssertSigned(vectors);
    }

    /// <summary>The refinement with a cluster at the k-th value: converged residuals, and the vector in the cluster's span.</summary>
    [Fact]
    public void TopK_of_moments_with_a_cluster_at_the_kth_value_converges_in_double()
    {
        Device device = Device;
        const int d = StreamingPca.DeviceMinimumFeatures, n = 512;
        double[][] q = Orthogonal(d, seed: 31);
        double[] spectrum = [10, 5, 2, 2 - 1e-6, 2 - 2e-6, .. Enumerable.Repeat(1e-2, d - 5)];
        MomentsData data = PlantedRows(q, spectrum, n);
        var state = new Moments(d, device: device);
        using (Tensor all = data.Batch(0, n, device, rank2: true)) state.Update(all);
        var (values, vectors) = StreamingPca.TopK(state, 0, 3);
        AssertDoubleContract(state.Covariance(0), values, vectors, Block(d, 3));
        double drift = Drift(data, device.Kind), scale = (double)n / (n - 1);
        Assert.True(Math.Abs(values[2] - 2 * scale) <= drift + 2e-6 * scale + Tolerances.PcaEigenvalueRelative * 2, $"value 2 = {values[2]:R}");
        Assert.True(AngleToSpan(Row(vectors, 2), [q[2], q[3], q[4]]) < Tolerances.PcaAngle, "the third vector left the cluster's span");
        Assert.True(drift / 1.9 < Tolerances.PcaAngle, "the bound itself must leave the angle target meaningful (gap to the rest 1.99)");
    }

    /// <summary>The contrastive difference (indefinite, the proven interval) through the device and the refinement.</summary>
    [Fact]
    public void Contrastive_on_the_device_keeps_the_double_accuracy()
    {
        Device device = Device;
        const int d = StreamingPca.DeviceMinimumFeatures, n = 512;
        double[][] q = Orthogonal(d, seed: 12);
        // A small common variance, so that the pipeline's worst-case drift over 256 features stays below the angle target.
        double[] badSpectrum = [.. Enumerable.Repeat(1e-2, d)], goodSpectrum = [.. Enumerable.Repeat(1e-2, d)];
        badSpectrum[4] += 6;
        badSpectrum[9] += 2.5;
        goodSpectrum[1] += 4;
        MomentsData badRows = PlantedRows(q, badSpectrum, n), goodRows = PlantedRows(q, goodSpectrum, n);
        var bad = new Moments(d, device: device);
        var good = new Moments(d, device: device);
        using (Tensor b = badRows.All(device)) bad.Update(b);
        using (Tensor g = goodRows.All(device)) good.Update(g);
        var (values, vectors) = StreamingPca.Contrastive(bad, good, 0, 2);
        double[,] difference = bad.Covariance(0), subtracted = good.Covariance(0);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) difference[i, j] -= subtracted[i, j];
        AssertDoubleContract(difference, values, vectors, Block(d, 2));
        double drift = Drift(badRows, device.Kind) + Drift(goodRows, device.Kind), scale = (double)n / (n - 1);
        foreach ((int i, double planted, int direction) in new[] { (0, 6.0, 4), (1, 2.5, 9) })
        {
            Assert.True(Math.Abs(values[i] - planted * scale) <= drift + Tolerances.PcaEigenvalueRelative * planted, $"{values[i]:R} vs {planted * scale:R}");
            Assert.True(Angle(Row(vectors, i), q[direction]) < Tolerances.PcaAngle, $"q{direction}: {Angle(Row(vectors, i), q[direction]):E2} rad");
        }
        Assert.True(drift / 2.5 < Tolerances.PcaAngle, "the bound itself must leave the angle target meaningful (gap 2.5)");
    }

    /// <summary>The double path's convergence contract, checked on the exact double matrix.</summary>
    private static void AssertDoubleContract(double[,] a, double[] values, double[,] vectors, int p)
    {
        double bound = Tolerances.PcaDoubleResidual(a.GetLength(0), p, Frobenius(a));
        for (int i = 0; i < values.Length; i++)
            Assert.True(Residual(a, Row(vectors, i), values[i]) <= bound, $"pair {i}: residual {Residual(a, Row(vectors, i), values[i]):E3} above {bound:E3}");
    }

    public static TheoryData<string, Type, string> BadInputs() => new()
    {
        { "null", typeof(ArgumentNullException), "symmetric" },
        { "disposed", typeof(ObjectDisposedException), "" },
        { "rank 3", typeof(ArgumentException), "symmetric" },
        { "not square", typeof(ArgumentException), "symmetric" },
        { "empty", typeof(ArgumentException), "symmetric" },
        { "Float16", typeof(ArgumentException), "symmetric" },
        { "not symmetric", typeof(ArgumentException), "symmetric" },
        { "NaN", typeof(ArgumentException), "symmetric" },
        { "Inf", typeof(ArgumentException), "symmetric" },
        { "k 0", typeof(ArgumentOutOfRangeException), "k" },
        { "k past d", typeof(ArgumentOutOfRangeException), "k" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_refused_naming_the_argument_and_left_as_it_was(string rule, Type exception, string argument)
    {
        Device device = Device;
        const int d = 6;
        double[,] a = Planted(Orthogonal(d, seed: 1), [3, 2, 1]);
        float[] values = Single(a);
        int k = 2;
        long[] shape = [d, d];
        switch (rule)
        {
            case "rank 3": shape = [2, 3, 6]; break;
            case "not square": values = values[..24]; shape = [4, 6]; break;
            case "empty": values = []; shape = [0, 0]; break;
            case "not symmetric":
                // Twice what the rule allows, ‖A - A^T‖_F <= 16 sqrt(d) u ‖A‖_F, all on one mirror pair.
                double allowed = StreamingPca.SingleSymmetryFactor * Math.Sqrt(d) * Tolerances.SingleUnitRoundoff * Frobenius(a);
                values[1 * d + 4] += (float)(2 * allowed / Math.Sqrt(2));
                break;
            case "NaN": values[2 * d + 2] = float.NaN; break;
            case "Inf": values[0 * d + 5] = float.NegativeInfinity; break;
            case "k 0": k = 0; break;
            case "k past d": k = d + 1; break;
        }
        using Tensor host = Tensor.FromArray(values, shape);
        using Tensor onDevice = host.To(device);
        using Tensor matrix = rule == "Float16" ? Precision.Convert(onDevice, DType.Float16) : onDevice.To(device);
        byte[] before = Bytes(matrix);
        if (rule == "disposed") matrix.Dispose();
        Exception e = Assert.Throws(exception, () => StreamingPca.TopK(rule == "null" ? null! : matrix, k));
        if (e is ArgumentException argumentException) Assert.Equal(argument, argumentException.ParamName);
        if (rule is "NaN") Assert.Contains("symmetric[2, 2] = NaN", e.Message);
        if (rule is "not symmetric") Assert.Contains("symmetric[1, 4]", e.Message);
        if (rule is "Float16") Assert.Contains("Float16", e.Message);
        if (rule is "k past d") Assert.Contains("k = 7", e.Message);
        if (rule != "disposed") Assert.Equal(before, Bytes(matrix));
    }

    /// <summary>Half what the symmetry rule allows, on one mirror pair: accepted, and the pairs are those of (A + A^T) / 2 within the bound.</summary>
    [Fact]
    public void Asymmetry_within_the_derived_rule_is_accepted()
    {
        const int d = 40;
        double[][] q = Orthogonal(d, seed: 1);
        double[,] a = Planted(q, Spectrum(d, seed: 2));
        float[] values = Single(a);
        double allowed = StreamingPca.SingleSymmetryFactor * Math.Sqrt(d) * Tolerances.SingleUnitRoundoff * Frobenius(Widened(values, d));
        values[1 * d + 4] += (float)(allowed / 2 / Math.Sqrt(2));
        double[,] seen = Widened(values, d), symmetric = new double[d, d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) symmetric[i, j] = (seen[i, j] + seen[j, i]) / 2;
        using Tensor host = Tensor.FromArray(values, d, d);
        using Tensor matrix = host.To(Device);
        var (lambdas, vectors) = StreamingPca.TopK(matrix, 3);
        double rho = Tolerances.PcaSingleResidual(d, Block(d, 3), Frobenius(seen));
        for (int i = 0; i < 3; i++)
            Assert.True(Residual(symmetric, Row(vectors, i), lambdas[i]) <= rho, $"pair {i}");
    }

    private static byte[] Bytes(Tensor tensor)
    {
        using Tensor host = tensor.To(Device.Cpu);
        return tensor.DType == DType.Float16
            ? [.. host.ToArray<Half>().SelectMany(h => BitConverter.GetBytes(h))]
            : [.. host.ToArray<float>().SelectMany(BitConverter.GetBytes)];
    }
}

public sealed class CpuStreamingPcaTests : StreamingPcaDeviceTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class OpenClStreamingPcaTests : StreamingPcaDeviceTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);
}

public sealed class CudaStreamingPcaTests : StreamingPcaDeviceTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
