namespace NativeTensor.Reference;

/// <summary>
/// The specification of <see cref="Moments"/> as plain two-pass math in double: the mean first, then the scatter
/// <c>Σ (x - μ)(x - μ)^T</c> of the rows about it. No streaming, no merging, no Float32 anywhere: whatever order and
/// precision <see cref="Moments"/> uses, its results are compared with these.
/// </summary>
/// <remarks>
/// Rows are given flattened, row-major: <c>rows[i * features + j]</c> is feature j of row i. NaN and ±Inf propagate as
/// IEEE arithmetic makes them: a non-finite value in feature j makes mean j and every scatter entry in row and column j
/// non-finite, and touches no other entry.
/// </remarks>
public static class MomentsReference
{
    /// <summary><c>μ[j] = Σ_i rows[i, j] / n</c>.</summary>
    /// <exception cref="ArgumentException">There are no rows, or the length is not a multiple of <paramref name="features"/>.</exception>
    public static double[] Mean(ReadOnlySpan<double> rows, int features)
    {
        int n = RowCount(rows, features);
        var mean = new double[features];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < features; j++) mean[j] += rows[i * features + j];
        for (int j = 0; j < features; j++) mean[j] /= n;
        return mean;
    }

    /// <summary><c>M2[j, k] = Σ_i (rows[i, j] - μ[j]) (rows[i, k] - μ[k])</c>, with μ from <see cref="Mean"/>.</summary>
    public static double[,] Scatter(ReadOnlySpan<double> rows, int features)
    {
        int n = RowCount(rows, features);
        double[] mean = Mean(rows, features);
        var scatter = new double[features, features];
        var centred = new double[features];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < features; j++) centred[j] = rows[i * features + j] - mean[j];
            for (int j = 0; j < features; j++)
                for (int k = 0; k < features; k++) scatter[j, k] += centred[j] * centred[k];
        }
        return scatter;
    }

    /// <summary><c>C = M2 / (n - ddof)</c>: with ddof 1 the unbiased sample covariance (NumPy's <c>np.cov</c> default).</summary>
    /// <exception cref="ArgumentOutOfRangeException">ddof is negative or not below the row count.</exception>
    public static double[,] Covariance(ReadOnlySpan<double> rows, int features, int ddof = 1)
    {
        int n = RowCount(rows, features);
        if (ddof < 0 || ddof >= n)
            throw new ArgumentOutOfRangeException(nameof(ddof), ddof, $"ddof = {ddof} with {n} rows: n - ddof must be > 0");
        double[,] scatter = Scatter(rows, features);
        for (int j = 0; j < features; j++)
            for (int k = 0; k < features; k++) scatter[j, k] /= n - ddof;
        return scatter;
    }

    /// <summary>
    /// <c>R[j, k] = M2[j, k] / sqrt(M2[j, j] M2[k, k])</c> (Pearson; ddof cancels). A feature with zero variance gets NaN
    /// in its row and column, as 0 / 0 gives (NumPy's <c>np.corrcoef</c> does the same).
    /// </summary>
    public static double[,] Correlation(ReadOnlySpan<double> rows, int features)
    {
        double[,] scatter = Scatter(rows, features);
        var correlation = new double[features, features];
        for (int j = 0; j < features; j++)
            for (int k = 0; k < features; k++)
                correlation[j, k] = scatter[j, k] / Math.Sqrt(scatter[j, j] * scatter[k, k]);
        return correlation;
    }

    /// <summary>The rows of one group of a [n, groups, features] batch, as [n, features]: <c>out[i, j] = batch[i, group, j]</c>.</summary>
    public static double[] Group(ReadOnlySpan<double> batch, int groups, int features, int group)
    {
        int n = RowCount(batch, groups * features);
        if (group < 0 || group >= groups)
            throw new ArgumentOutOfRangeException(nameof(group), group, $"group = {group}: there are {groups} groups");
        var rows = new double[n * features];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < features; j++) rows[i * features + j] = batch[(i * groups + group) * features + j];
        return rows;
    }

    /// <summary>max |actual - expected| / max |expected|: the max-norm relative error the stability target is stated in.</summary>
    public static double MaxNormRelative(double[,] actual, double[,] expected)
    {
        double difference = 0, scale = 0;
        for (int j = 0; j < expected.GetLength(0); j++)
            for (int k = 0; k < expected.GetLength(1); k++)
            {
                difference = Math.Max(difference, Math.Abs(actual[j, k] - expected[j, k]));
                scale = Math.Max(scale, Math.Abs(expected[j, k]));
            }
        return difference / scale;
    }

    private static int RowCount(ReadOnlySpan<double> rows, int features)
    {
        if (features < 1)
            throw new ArgumentOutOfRangeException(nameof(features), features, $"features = {features}: must be at least 1");
        if (rows.Length == 0 || rows.Length % features != 0)
            throw new ArgumentException($"rows has {rows.Length} values: must be a positive multiple of features = {features}", nameof(rows));
        return rows.Length / features;
    }
}
