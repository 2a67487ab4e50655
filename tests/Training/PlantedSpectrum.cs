using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Training;

/// <summary>
/// Matrices and data whose eigenpairs are known by construction, for the <see cref="NativeTensor.Training.StreamingPca"/>
/// tests: <c>Q Λ Q^T</c> with a random orthogonal Q, and rows whose sample covariance is such a matrix exactly.
/// </summary>
internal static class PlantedSpectrum
{
    /// <summary>A random orthogonal d×d matrix (Gram–Schmidt, twice, of a Gaussian one); its rows are the planted directions.</summary>
    public static double[][] Orthogonal(int d, int seed)
    {
        var random = new Random(seed);
        var q = new double[d][];
        for (int i = 0; i < d; i++)
        {
            q[i] = [.. Enumerable.Range(0, d).Select(_ => MomentsData.Normal(random))];
            for (int pass = 0; pass < 2; pass++)
                for (int r = 0; r < i; r++)
                {
                    double dot = Dot(q[r], q[i]);
                    for (int j = 0; j < d; j++) q[i][j] -= dot * q[r][j];
                }
            double norm = Math.Sqrt(Dot(q[i], q[i]));
            for (int j = 0; j < d; j++) q[i][j] /= norm;
        }
        return q;
    }

    /// <summary>Σ_i λ_i q_i q_i^T.</summary>
    public static double[,] Planted(double[][] q, double[] spectrum)
    {
        int d = q[0].Length;
        var a = new double[d, d];
        for (int i = 0; i < spectrum.Length; i++)
            for (int r = 0; r < d; r++)
                for (int c = 0; c < d; c++) a[r, c] += spectrum[i] * q[i][r] * q[i][c];
        // Exactly symmetric, as a covariance from Moments is.
        for (int r = 0; r < d; r++)
            for (int c = 0; c < r; c++) a[r, c] = a[c, r];
        return a;
    }

    /// <summary>10, 5, 2, then a small noise floor in [0, 1e-3).</summary>
    public static double[] Spectrum(int d, int seed)
    {
        var random = new Random(seed);
        return [10, 5, 2, .. Enumerable.Range(3, d - 3).Select(_ => 1e-3 * random.NextDouble())];
    }

    public static double Dot(double[] x, double[] y) => x.Select((v, i) => v * y[i]).Sum();

    public static double[] Row(double[,] m, int i) => [.. Enumerable.Range(0, m.GetLength(1)).Select(j => m[i, j])];

    /// <summary>The angle between two lines (sign ignored), from the sine, which is accurate at small angles.</summary>
    public static double Angle(double[] v, double[] q)
    {
        double cos = Math.Abs(Dot(v, q)) / Math.Sqrt(Dot(v, v) * Dot(q, q));
        double[] rejection = [.. v.Select((x, j) => x / Math.Sqrt(Dot(v, v)) - Math.Sign(Dot(v, q)) * cos * q[j] / Math.Sqrt(Dot(q, q)))];
        return Math.Atan2(Math.Sqrt(Dot(rejection, rejection)), cos);
    }

    /// <summary>The angle between v and the span of the orthonormal vectors <paramref name="basis"/>, from the sine.</summary>
    public static double AngleToSpan(double[] v, IEnumerable<double[]> basis)
    {
        double[] rest = [.. v.Select(x => x / Math.Sqrt(Dot(v, v)))];
        foreach (double[] b in basis)
        {
            double dot = Dot(rest, b);
            for (int j = 0; j < rest.Length; j++) rest[j] -= dot * b[j];
        }
        return Math.Asin(Math.Min(1, Math.Sqrt(Dot(rest, rest))));
    }

    /// <summary>‖A v - λ v‖ in double.</summary>
    public static double Residual(double[,] a, double[] v, double lambda)
    {
        double sum = 0;
        for (int i = 0; i < v.Length; i++)
        {
            double row = -lambda * v[i];
            for (int j = 0; j < v.Length; j++) row += a[i, j] * v[j];
            sum += row * row;
        }
        return Math.Sqrt(sum);
    }

    public static double Frobenius(double[,] a) => Math.Sqrt(a.Cast<double>().Sum(x => x * x));

    /// <summary>Each entry rounded to Float32, row-major.</summary>
    public static float[] Single(double[,] a) => [.. a.Cast<double>().Select(x => (float)x)];

    /// <summary>The Float32 values as a double matrix (exact).</summary>
    public static double[,] Widened(float[] values, int d)
    {
        var a = new double[d, d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) a[i, j] = values[i * d + j];
        return a;
    }

    /// <summary>StreamingPca's block for k pairs of a d×d matrix, as its remarks state: min(d, max(2k, k + 8)).</summary>
    public static int Block(int d, int k) => Math.Min(d, Math.Max(2 * k, k + 8));

    public static void AssertSigned(double[,] vectors)
    {
        for (int i = 0; i < vectors.GetLength(0); i++)
        {
            double[] v = Row(vectors, i);
            int largest = Array.IndexOf(v, v.MaxBy(Math.Abs));
            Assert.True(v[largest] > 0, $"vector {i}: its largest-magnitude component {v[largest]} is not positive");
        }
    }

    /// <summary>
    /// Rows whose centred values are Walsh functions (±1 columns of a Hadamard matrix, mutually orthogonal, zero mean) scaled
    /// by sqrt(λ) along planted directions, around a mean of 10: their sample covariance is Σ λ_i n/(n-1) q_i q_i^T exactly
    /// before the rows are rounded to Float32. That rounding and the pipeline's bound (<see cref="Drift"/>), not sampling
    /// noise, limit recovery. (A mean of 1e4 would round each value by up to 5e-4, and so move the planted covariance itself
    /// by ~1e-4: the Moments tests cover large means against the reference of the rounded rows instead.) n must be a power
    /// of two above the spectrum's length.
    /// </summary>
    public static MomentsData PlantedRows(double[][] q, double[] spectrum, int n)
    {
        int d = q[0].Length;
        var values = new float[n * d];
        var x = new double[d];
        for (int i = 0; i < n; i++)
        {
            Array.Fill(x, 10.0);
            for (int l = 0; l < spectrum.Length; l++)
            {
                double weight = Math.Sqrt(spectrum[l]) * Walsh(i, l + 1);
                for (int j = 0; j < d; j++) x[j] += weight * q[l][j];
            }
            for (int j = 0; j < d; j++) values[i * d + j] = (float)x[j];
        }
        return MomentsData.Of(values, n, 1, d);
    }

    /// <summary>Column <paramref name="column"/> of the Sylvester Hadamard matrix: (-1)^popcount(row &amp; column).</summary>
    private static int Walsh(int row, int column) => int.PopCount(row & column) % 2 == 0 ? 1 : -1;

    /// <summary>
    /// How far the pipeline's covariance can be from the planted one, in 2-norm (‖ΔC‖_2 &lt;= ‖ΔC‖_F): the derived bound of
    /// Moments against the reference of the rounded rows, plus what rounding the rows to Float32 (at most one ulp, 2^-23 |x|,
    /// per value) can do to a covariance: with ỹ the centred rounded rows and F_j twice the largest rounding of feature j,
    /// |ΔC_jk| &lt;= Σ_i (|ỹ_ij| F_k + F_j |ỹ_ik| + F_j F_k) / (n - 1). By Weyl eigenvalues move at most ‖ΔC‖_2, and by
    /// Davis–Kahan directions at most ‖ΔC‖_2 over their gap.
    /// </summary>
    public static double Drift(MomentsData data, DeviceKind backend = DeviceKind.Cpu)
    {
        int n = data.Rows, d = data.Features;
        double[] x = data.Group(0), mean = Reference.MomentsReference.Mean(x, d);
        double[,] bound = MomentsErrorBound.Scatter(x, d, backend);
        double[] rounding = [.. Enumerable.Range(0, d).Select(j => 2 * Math.ScaleB(1, -23) * Enumerable.Range(0, n).Max(i => Math.Abs(x[i * d + j])))];
        var spread = new double[d];   // Σ_i |ỹ_ij|
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) spread[j] += Math.Abs(x[i * d + j] - mean[j]);
        double total = 0;
        for (int j = 0; j < d; j++)
            for (int k = 0; k < d; k++)
            {
                double moved = spread[j] * rounding[k] + rounding[j] * spread[k] + n * rounding[j] * rounding[k];
                total += Math.Pow((bound[j, k] + moved) / (n - 1), 2);
            }
        return Math.Sqrt(total);
    }
}
