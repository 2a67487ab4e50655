using NativeTensor.Reference;

namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// How far <see cref="Moments"/> may be from <see cref="MomentsReference"/> on given data, entry by entry, derived from
/// the pipeline's error analysis (see <see cref="Tolerances.MomentsScatterRelative"/>) instead of picked by eye.
/// </summary>
/// <remarks>
/// For features j, k with N rows, X_j = max |x_j|, R_j = max |x_j - μ_j|, e = <see cref="Tolerances.MomentsMeanRelative"/>
/// (the error of each batch's and each merged mean, relative to X) and D_j = M2_jj + N ((2 u + e) X_j)² (the sum of
/// squares about the Float32-rounded batch means, which sit at most u X_j + e X_j, plus rounding, from the true ones,
/// u = 2^-24):
/// <code>
/// |ΔM2_jk| &lt;= f sqrt(D_j D_k) + N e (R_j X_k + X_j R_k) [+ N e (4 u + 3 e) X_j X_k on a device] + 128 · 2^-149 · N
/// </code>
/// with f = <see cref="Tolerances.MomentsScatterRelative"/> (the Float32 blocks, their accumulation and the double
/// steps). The second term is the merged means' error entering Chan's δ δ^T n_a n_b / n (n_a n_b / n &lt;= N / 4 and
/// |δ| &lt;= 2 R). The bracketed term is the device path's step 4: it corrects with c = μ~ - p (the computed mean less its
/// Float32 rounding p) instead of the exact mean of the centred rows, and n |c~_j c~_k - c_j c_k| &lt;= n (|c_j| ε_k +
/// ε_j |c_k| + ε_j ε_k) with ε &lt;= e X and |c| &lt;= (2 u + e) X. The last term covers products that fall among binary32
/// subnormals.
/// </remarks>
public static class MomentsErrorBound
{
    /// <summary>The allowed |M2 - M2_ref| per entry for the rows of one group ([N, d] flattened, values as the kernel saw them).</summary>
    public static double[,] Scatter(double[] rows, int d, DeviceKind backend)
    {
        int n = rows.Length / d;
        double[] mean = MomentsReference.Mean(rows, d);
        double[,] m2 = MomentsReference.Scatter(rows, d);
        double f = Tolerances.MomentsScatterRelative(backend, n), e = Tolerances.MomentsMeanRelative(n, backend), u = Math.ScaleB(1, -24);
        double correction = backend == DeviceKind.Cpu ? 0 : e * (4 * u + 3 * e);
        var largest = new double[d];
        var spread = new double[d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
            {
                largest[j] = Math.Max(largest[j], Math.Abs(rows[i * d + j]));
                spread[j] = Math.Max(spread[j], Math.Abs(rows[i * d + j] - mean[j]));
            }
        var squares = new double[d];
        for (int j = 0; j < d; j++) squares[j] = m2[j, j] + n * Math.Pow((2 * u + e) * largest[j], 2);
        var bound = new double[d, d];
        for (int j = 0; j < d; j++)
            for (int k = 0; k < d; k++)
                bound[j, k] = f * Math.Sqrt(squares[j] * squares[k]) + n * e * (spread[j] * largest[k] + largest[j] * spread[k])
                    + n * correction * largest[j] * largest[k] + 128 * Math.ScaleB(1, -149) * n;
        return bound;
    }

    /// <summary>The allowed |μ - μ_ref| per feature on <paramref name="backend"/>.</summary>
    public static double[] Mean(double[] rows, int d, DeviceKind backend = DeviceKind.Cpu)
    {
        int n = rows.Length / d;
        var bound = new double[d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) bound[j] = Math.Max(bound[j], Math.Abs(rows[i * d + j]));
        for (int j = 0; j < d; j++) bound[j] *= Tolerances.MomentsMeanRelative(n, backend);
        return bound;
    }

    /// <summary>‖actual - expected‖_F / ‖expected‖_F, reported beside the max-norm figure.</summary>
    public static double FrobeniusRelative(double[,] actual, double[,] expected)
    {
        double difference = 0, scale = 0;
        for (int j = 0; j < expected.GetLength(0); j++)
            for (int k = 0; k < expected.GetLength(1); k++)
            {
                difference += Math.Pow(actual[j, k] - expected[j, k], 2);
                scale += expected[j, k] * expected[j, k];
            }
        return Math.Sqrt(difference / scale);
    }
}
