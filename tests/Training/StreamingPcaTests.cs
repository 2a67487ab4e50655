using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;
using NativeTensor.Training;
using static NativeTensor.Tests.Training.PlantedSpectrum;

namespace NativeTensor.Tests.Training;

/// <summary>
/// <see cref="StreamingPca"/> on matrices whose eigenpairs are known by construction (<c>Q Λ Q^T</c> with a random
/// orthogonal Q), covariances planted exactly in data through <see cref="Moments"/>, contrastive differences, and bad input.
/// </summary>
public sealed class StreamingPcaTests
{
    private static void AssertRecovers(double[,] a, double[][] q, double[] spectrum, int k)
    {
        (double[] values, double[,] vectors) = StreamingPca.TopK(a, k);
        int[] order = [.. Enumerable.Range(0, spectrum.Length).OrderByDescending(i => spectrum[i])];
        Assert.Equal(k, values.Length);
        Assert.Equal(k, vectors.GetLength(0));
        for (int i = 0; i < k; i++)
        {
            double expected = spectrum[order[i]];
            Assert.True(Math.Abs(values[i] - expected) <= Tolerances.PcaEigenvalueRelative * Math.Abs(expected),
                $"value {i} = {values[i]:R}, planted {expected:R}");
            if (i < 3)
                Assert.True(Angle(Row(vectors, i), q[order[i]]) < Tolerances.PcaAngle, $"vector {i} is {Angle(Row(vectors, i), q[order[i]]):E2} rad from its planted direction");
            Assert.True(Math.Abs(Dot(Row(vectors, i), Row(vectors, i)) - 1) <= Tolerances.PcaOrthonormality, $"vector {i} is not unit");
        }
        AssertSigned(vectors);
    }

    /// <summary>d = 12 takes the direct Jacobi path (p = d), the others the filtered subspace iteration.</summary>
    [Theory]
    [InlineData(12)]
    [InlineData(24)]
    [InlineData(120)]
    public void Recovers_a_planted_spectrum_and_its_directions(int d)
    {
        double[][] q = Orthogonal(d, seed: d);
        double[] spectrum = Spectrum(d, seed: d + 1);
        AssertRecovers(Planted(q, spectrum), q, spectrum, k: 3);
    }

    /// <summary>
    /// Entries far below and far above double's square-root range (their squares would underflow to 0 or overflow to Inf):
    /// the spectrum scaled by 2^-600 and 2^600 gives exactly the unit-scale answer scaled back (power-of-two scaling is exact
    /// at every step, so the bits must agree), whose accuracy the other tests establish.
    /// </summary>
    [Theory]
    [InlineData(-600, 24)]
    [InlineData(600, 24)]
    [InlineData(-600, 120)]
    [InlineData(600, 120)]
    public void Recovers_a_planted_spectrum_at_extreme_scales(int exponent, int d)
    {
        double[][] q = Orthogonal(d, seed: d);
        double[] spectrum = [.. Spectrum(d, seed: d + 1).Select(v => Math.ScaleB(v, exponent))];
        double[,] a = Planted(q, spectrum);
        (double[] values, double[,] vectors) = StreamingPca.TopK(a, 3);
        (double[] unitValues, double[,] unitVectors) = StreamingPca.TopK(Planted(q, Spectrum(d, seed: d + 1)), 3);
        Assert.Equal(unitValues.Select(v => Math.ScaleB(v, exponent)), values);
        Assert.Equal(unitVectors, vectors);
    }

    /// <summary>
    /// An indefinite matrix: top-k is the largest algebraic values, above negative ones larger in magnitude. The third value
    /// sits in a dense noise floor (no gap after any small block), which exercises the block-doubling fallback.
    /// </summary>
    [Theory]
    [InlineData(16)]
    [InlineData(90)]
    public void Recovers_the_largest_algebraic_eigenvalues_of_an_indefinite_matrix(int d)
    {
        double[][] q = Orthogonal(d, seed: 5);
        var random = new Random(6);
        double[] spectrum = [3, 1, -2, -8, -20, .. Enumerable.Range(5, d - 5).Select(_ => 1e-3 * (random.NextDouble() - 0.5))];
        (double[] values, _) = StreamingPca.TopK(Planted(q, spectrum), 2);
        Assert.True(Math.Abs(values[0] - 3) <= Tolerances.PcaEigenvalueRelative * 3);
        Assert.True(Math.Abs(values[1] - 1) <= Tolerances.PcaEigenvalueRelative);
        AssertRecovers(Planted(q, spectrum), q, spectrum, k: 3);
    }

    /// <summary>A flat spectrum (eigenvalues 1.3, 1.2, 1.1 over 0.95..1.0): plain subspace iteration would need thousands of steps.</summary>
    [Fact]
    public void Converges_on_a_nearly_flat_spectrum()
    {
        const int d = 200;
        double[][] q = Orthogonal(d, seed: 11);
        double[] spectrum = [1.3, 1.2, 1.1, .. Enumerable.Range(3, d - 3).Select(i => 1.0 - 0.05 * i / d)];
        AssertRecovers(Planted(q, spectrum), q, spectrum, k: 3);
    }

    [Fact]
    public void K_equal_to_d_gives_every_pair_descending_and_an_orthonormal_basis()
    {
        const int d = 20;
        double[][] q = Orthogonal(d, seed: 2);
        double[] spectrum = [.. Enumerable.Range(0, d).Select(i => 4.0 - i * 0.37)];   // positive and negative
        double[,] a = Planted(q, spectrum);
        (double[] values, double[,] vectors) = StreamingPca.TopK(a, d);
        for (int i = 0; i < d; i++)
        {
            Assert.True(Math.Abs(values[i] - spectrum[i]) <= Tolerances.PcaEigenvalueRelative * Math.Abs(spectrum[i]), $"value {i}");
            for (int j = 0; j < d; j++)
                Assert.True(Math.Abs(Dot(Row(vectors, i), Row(vectors, j)) - (i == j ? 1 : 0)) <= Tolerances.PcaOrthonormality, $"V V^T [{i}, {j}]");
        }
        AssertRecovers(a, q, spectrum, k: d);
    }

    [Fact]
    public void The_same_matrix_gives_the_same_bits()
    {
        double[][] q = Orthogonal(60, seed: 3);
        double[,] a = Planted(q, Spectrum(60, seed: 4));
        (double[] v1, double[,] w1) = StreamingPca.TopK(a, 4);
        (double[] v2, double[,] w2) = StreamingPca.TopK(a, 4);
        Assert.Equal(v1, v2);
        Assert.Equal(w1, w2);
    }

    [Fact]
    public void The_zero_matrix_gives_zeros_and_unit_vectors()
    {
        (double[] values, double[,] vectors) = StreamingPca.TopK(new double[5, 5], 2);
        Assert.Equal([0.0, 0.0], values);
        Assert.Equal(1.0, vectors[0, 0]);
        Assert.Equal(1.0, vectors[1, 1]);
    }

    [Fact]
    public void Recovers_directions_planted_in_data_through_moments()
    {
        const int d = 16, n = 1024;
        double[][] q = Orthogonal(d, seed: 8);
        double[] spectrum = [10, 5, 2, .. Enumerable.Repeat(1e-2, d - 3)];
        MomentsData data = PlantedRows(q, spectrum, n);
        var state = new Moments(d, device: Device.Cpu);
        for (int first = 0; first < n; first += 300)
        {
            using Tensor batch = data.Batch(first, Math.Min(300, n - first), Device.Cpu, rank2: true);
            state.Update(batch);
        }
        (double[] values, double[,] vectors) = StreamingPca.TopK(state, 0, 3);
        double drift = Drift(data);
        for (int i = 0; i < 3; i++)
        {
            double expected = spectrum[i] * n / (n - 1);
            Assert.True(Math.Abs(values[i] - expected) <= drift + Tolerances.PcaEigenvalueRelative * expected, $"value {i} = {values[i]:R}, planted {expected:R}");
            Assert.True(Angle(Row(vectors, i), q[i]) < Tolerances.PcaAngle, $"vector {i}: {Angle(Row(vectors, i), q[i]):E2} rad");
        }
        Assert.True(drift / 3 < Tolerances.PcaAngle, "the bound itself must leave the angle target meaningful (gap 3)");
    }

    /// <summary>cov(bad) - cov(good): the directions bad adds (positive) come first; those good has more of are negative, last.</summary>
    [Fact]
    public void Contrastive_finds_what_the_bad_population_adds()
    {
        const int d = 16, n = 512;
        double[][] q = Orthogonal(d, seed: 12);
        double[] common = [.. Enumerable.Repeat(1.0, d)];
        double[] badSpectrum = (double[])common.Clone(), goodSpectrum = (double[])common.Clone();
        badSpectrum[4] += 6;    // bad varies much more along q4
        badSpectrum[9] += 2.5;  // and somewhat more along q9
        goodSpectrum[1] += 4;   // good varies more along q1: a negative eigenvalue of the difference
        MomentsData badRows = PlantedRows(q, badSpectrum, n), goodRows = PlantedRows(q, goodSpectrum, n);
        var bad = new Moments(d, device: Device.Cpu);
        var good = new Moments(d, device: Device.Cpu);
        using (Tensor b = badRows.All(Device.Cpu)) bad.Update(b);
        using (Tensor g = goodRows.All(Device.Cpu)) good.Update(g);
        double drift = Drift(badRows) + Drift(goodRows), scale = (double)n / (n - 1);
        (double[] values, double[,] vectors) = StreamingPca.Contrastive(bad, good, 0, 2);
        (double[] all, double[,] allVectors) = StreamingPca.Contrastive(bad, good, 0, d);
        foreach ((double value, double[] vector, double planted, int direction) in new[]
                 { (values[0], Row(vectors, 0), 6.0, 4), (values[1], Row(vectors, 1), 2.5, 9), (all[^1], Row(allVectors, d - 1), -4.0, 1) })
        {
            Assert.True(Math.Abs(value - planted * scale) <= drift + Tolerances.PcaEigenvalueRelative * Math.Abs(planted), $"{value:R} vs {planted * scale:R}");
            Assert.True(Angle(vector, q[direction]) < Tolerances.PcaAngle, $"q{direction}: {Angle(vector, q[direction]):E2} rad");
        }
        Assert.True(drift / 2.5 < Tolerances.PcaAngle, "the bound itself must leave the angle target meaningful (gap 2.5)");
        AssertSigned(allVectors);
    }

    public static TheoryData<string, Type, string> BadInputs() => new()
    {
        { "null", typeof(ArgumentNullException), "symmetric" },
        { "not square", typeof(ArgumentException), "symmetric" },
        { "empty", typeof(ArgumentException), "symmetric" },
        { "not symmetric", typeof(ArgumentException), "symmetric" },
        { "NaN", typeof(ArgumentException), "symmetric" },
        { "Inf", typeof(ArgumentException), "symmetric" },
        { "k 0", typeof(ArgumentOutOfRangeException), "k" },
        { "k past d", typeof(ArgumentOutOfRangeException), "k" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_refused_naming_the_argument(string rule, Type exception, string argument)
    {
        double[,] a = Planted(Orthogonal(6, seed: 1), [3, 2, 1]);
        int k = 2;
        double[,]? matrix = a;
        switch (rule)
        {
            case "null": matrix = null; break;
            case "not square": matrix = new double[3, 4]; break;
            case "empty": matrix = new double[0, 0]; break;
            case "not symmetric": a[1, 4] += 10 * StreamingPca.SymmetryTolerance * 3; break;
            case "NaN": a[2, 2] = double.NaN; break;
            case "Inf": a[0, 5] = double.NegativeInfinity; break;
            case "k 0": k = 0; break;
            case "k past d": k = 7; break;
        }
        Exception e = Assert.Throws(exception, () => StreamingPca.TopK(matrix!, k));
        Assert.Equal(argument, ((ArgumentException)e).ParamName);
        if (rule is "NaN") Assert.Contains("symmetric[2, 2] = NaN", e.Message);
        if (rule is "not symmetric") Assert.Contains("symmetric[1, 4]", e.Message);
    }

    [Fact]
    public void Asymmetry_within_the_tolerance_is_accepted_and_averaged()
    {
        double[][] q = Orthogonal(6, seed: 1);
        double[,] a = Planted(q, [3, 2, 1]);
        double largest = a.Cast<double>().Max(Math.Abs);
        a[1, 4] += StreamingPca.SymmetryTolerance * largest / 2;
        (double[] values, _) = StreamingPca.TopK(a, 1);
        Assert.True(Math.Abs(values[0] - 3) <= StreamingPca.SymmetryTolerance * largest, $"{values[0]}");
    }

    [Fact]
    public void Contrastive_refuses_states_of_different_sizes()
    {
        var e = Assert.Throws<ArgumentException>(() => StreamingPca.Contrastive(new Moments(3, device: Device.Cpu), new Moments(4, device: Device.Cpu), 0, 1));
        Assert.Equal("good", e.ParamName);
        Assert.Throws<ArgumentNullException>(() => StreamingPca.Contrastive(null!, new Moments(4, device: Device.Cpu), 0, 1));
    }
}
