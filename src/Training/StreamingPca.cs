using System.Numerics;
using System.Runtime.InteropServices;

namespace NativeTensor.Training;

/// <summary>
/// The top-k eigenpairs of a symmetric matrix: principal components of a <see cref="Moments"/> covariance, or the
/// directions that separate two populations, the eigenvectors of a contrastive difference <c>cov(bad) - cov(good)</c>.
/// </summary>
/// <remarks>
/// <para><b>Top-k</b> means the k <em>largest algebraic</em> eigenvalues (for a covariance, the largest variances; for an
/// indefinite difference, the directions where the first population varies most beyond the second; the most negative
/// ones are the top-k of the difference taken the other way round).</para>
/// <para><b>Method.</b> Blocked subspace iteration with Rayleigh–Ritz: a block of p = min(d, max(2k, k + 8)) orthonormal
/// vectors is multiplied by a polynomial in A, re-orthonormalised, and A is projected onto it; the small p×p projection is
/// diagonalised by cyclic Jacobi rotations. Plain subspace iteration converges to the eigenvalues largest in
/// <em>magnitude</em>; the polynomial used here is the Chebyshev polynomial of degree 8 that is bounded by 1 on
/// [lo, θ_p] and grows fast above it (Zhou and Saad's filtered subspace iteration), where lo is a proven lower bound on
/// the smallest eigenvalue (the larger of the Gershgorin bound and -‖A‖_F) and θ_p the block's smallest Ritz value. So the
/// largest algebraic eigenvalues are the ones amplified, whatever the sign of the rest, and flat spectra converge in
/// tens of iterations rather than thousands. When p = d the projection is A itself and Jacobi solves it directly.</para>
/// <para><b>Convergence</b> is declared when every one of the k pairs has a residual ‖A v - λ v‖ ≤ 64 sqrt(d) ε ‖A‖_F
/// (ε = 2^-52), which bounds each eigenvalue's error by that residual squared over its gap and each vector's angle by the
/// residual over its gap. When <see cref="IterationsPerBlock"/> iterations are not enough (the k-th eigenvalue sits in a
/// dense cluster, so no gap follows the block), the block doubles, keeping its Ritz vectors; once it would reach d, Jacobi
/// on A itself finishes. So TopK always returns converged pairs; that worst case costs O(d³).</para>
/// <para><b>Determinism and signs.</b> The start block comes from a fixed-seed SplitMix64 stream and every loop has a
/// fixed order, so the same matrix gives the same bits. Each eigenvector is returned with its largest-magnitude component
/// positive (the first such component on an exact tie). Eigenvectors of a repeated eigenvalue are any orthonormal basis of
/// its space.</para>
/// </remarks>
public static class StreamingPca
{
    /// <summary>The largest <c>|A[i, j] - A[j, i]|</c> accepted, relative to the largest <c>|A[i, j]|</c>; the matrix used is <c>(A + A^T) / 2</c>.</summary>
    /// <remarks>Covariances from <see cref="Moments"/> and their differences are exactly symmetric; 1e-9 leaves room for a
    /// matrix assembled with rounding elsewhere while still refusing one that is not symmetric at all (a wrong layout).</remarks>
    public const double SymmetryTolerance = 1e-9;

    /// <summary>Filtered iterations (each a degree-8 polynomial: 9 products with the block) before the block doubles.</summary>
    public const int IterationsPerBlock = 50;

    private const int FilterDegree = 8;

    /// <summary>
    /// The <paramref name="k"/> largest eigenvalues of <paramref name="symmetric"/>, descending, and their unit eigenvectors
    /// as the rows of <c>Vectors</c> [k, d] (row i belongs to <c>Values[i]</c>).
    /// </summary>
    /// <param name="symmetric">A d×d symmetric matrix (within <see cref="SymmetryTolerance"/>) of finite values, d &gt;= 1.</param>
    /// <param name="k">How many pairs: 1 to d.</param>
    /// <exception cref="ArgumentNullException">symmetric is null.</exception>
    /// <exception cref="ArgumentException">symmetric is not square, is empty, holds NaN or ±Inf, or is not symmetric.</exception>
    /// <exception cref="ArgumentOutOfRangeException">k is not in [1, d].</exception>
    public static (double[] Values, double[,] Vectors) TopK(double[,] symmetric, int k)
    {
        double[] a = Checked(symmetric, k, out int d);
        double frobenius = Math.Sqrt(a.Sum(v => v * v));
        if (frobenius == 0) return Result(new double[d], Identity(d), d, k);
        int p = Math.Min(d, Math.Max(2 * k, k + 8));
        return p == d ? DirectlyFull(a, d, k) : Iterate(a, d, k, p, frobenius);
    }

    /// <summary>The top-k principal components of one group of <paramref name="moments"/>: <c>TopK(moments.Covariance(group), k)</c>.</summary>
    public static (double[] Values, double[,] Vectors) TopK(Moments moments, int group, int k)
    {
        ArgumentNullException.ThrowIfNull(moments);
        return TopK(moments.Covariance(group), k);
    }

    /// <summary>
    /// The top-k eigenpairs of <c>cov(bad) - cov(good)</c> (both with ddof 1) for one group: the directions along which
    /// <paramref name="bad"/> varies most beyond <paramref name="good"/>. Values can be negative.
    /// </summary>
    /// <exception cref="ArgumentNullException">bad or good is null.</exception>
    /// <exception cref="ArgumentException">The two states have different groups or features.</exception>
    public static (double[] Values, double[,] Vectors) Contrastive(Moments bad, Moments good, int group, int k)
    {
        ArgumentNullException.ThrowIfNull(bad);
        ArgumentNullException.ThrowIfNull(good);
        if (bad.Features != good.Features || bad.Groups != good.Groups)
            throw new ArgumentException(
                $"good has {good.Groups} group(s) x {good.Features} features but bad has {bad.Groups} x {bad.Features}: the covariances must be the same size", nameof(good));
        double[,] difference = bad.Covariance(group), subtracted = good.Covariance(group);
        for (int i = 0; i < bad.Features; i++)
            for (int j = 0; j < bad.Features; j++) difference[i, j] -= subtracted[i, j];
        return TopK(difference, k);
    }

    /// <summary>Validates and returns <c>(A + A^T) / 2</c> flattened row-major.</summary>
    private static double[] Checked(double[,] symmetric, int k, out int d)
    {
        ArgumentNullException.ThrowIfNull(symmetric);
        d = symmetric.GetLength(0);
        if (symmetric.GetLength(1) != d || d == 0)
            throw new ArgumentException($"symmetric is [{d}, {symmetric.GetLength(1)}]: must be square with at least one row", nameof(symmetric));
        if (k < 1 || k > d)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"k = {k}: must be in [1, {d}] for a {d}x{d} matrix");
        double largest = 0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                double v = symmetric[i, j];
                if (!double.IsFinite(v))
                    throw new ArgumentException($"symmetric[{i}, {j}] = {v}: every entry must be finite", nameof(symmetric));
                largest = Math.Max(largest, Math.Abs(v));
            }
        var a = new double[d * d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                double difference = Math.Abs(symmetric[i, j] - symmetric[j, i]);
                if (difference > SymmetryTolerance * largest)
                    throw new ArgumentException(
                        $"symmetric[{i}, {j}] = {symmetric[i, j]:R} but symmetric[{j}, {i}] = {symmetric[j, i]:R}: they differ by {difference:G3}, " +
                        $"more than {SymmetryTolerance:G} x the largest magnitude {largest:G3}; the matrix must be symmetric", nameof(symmetric));
                a[i * d + j] = (symmetric[i, j] + symmetric[j, i]) / 2;
            }
        return a;
    }

    private static (double[] Values, double[,] Vectors) Iterate(double[] a, int d, int k, int p, double frobenius)
    {
        // Two proven lower bounds on the smallest eigenvalue, the larger kept: |λ| <= ‖A‖_2 <= ‖A‖_F, and Gershgorin's
        // discs, min_i (a_ii - Σ_j≠i |a_ij|).
        double gershgorin = double.PositiveInfinity;
        for (int i = 0; i < d; i++)
        {
            double radius = 0;
            for (int j = 0; j < d; j++)
                if (j != i) radius += Math.Abs(a[i * d + j]);
            gershgorin = Math.Min(gershgorin, a[i * d + i] - radius);
        }
        double lower = Math.Max(gershgorin, -frobenius);
        double tolerance = 64 * Math.Sqrt(d) * MachineEpsilon * frobenius;
        var random = new SplitMix64(0x5EED_0F_7C_A0UL + (ulong)d);
        double[][] block = [.. Enumerable.Range(0, p).Select(_ => Random(d, random))];
        Orthonormalise(block, random);
        for (int iteration = 1; ; iteration++)
        {
            // Rayleigh–Ritz: H = Q^T A Q, H = W Θ W^T, Ritz vectors Q W with A Q W = Z W.
            double[][] products = Multiply(a, d, block);
            var projected = new double[p * p];
            for (int r = 0; r < p; r++)
                for (int c = r; c < p; c++)
                    projected[r * p + c] = projected[c * p + r] = (Dot(block[r], products[c]) + Dot(block[c], products[r])) / 2;
            (double[] theta, double[][] w) = Jacobi(projected, p);
            double[][] ritz = Combine(block, w, d), images = Combine(products, w, d);
            double worst = 0;
            for (int i = 0; i < k; i++)
            {
                double residual = 0;
                for (int j = 0; j < d; j++) residual += Square(images[i][j] - theta[i] * ritz[i][j]);
                worst = Math.Max(worst, Math.Sqrt(residual));
            }
            if (worst <= tolerance) return Result(theta, ritz, d, k);
            if (iteration % IterationsPerBlock == 0)
            {
                // No gap after the block to converge against (a dense cluster around the k-th value): more vectors, keeping
                // the Ritz vectors found so far; at p = d the projection is A itself and Jacobi finishes the job.
                p = Math.Min(d, 2 * p);
                if (p == d) return DirectlyFull(a, d, k);
                block = [.. ritz, .. Enumerable.Range(0, p - ritz.Length).Select(_ => Random(d, random))];
            }
            else block = Filter(a, d, ritz, lower, theta[^1], theta[0]);
            Orthonormalise(block, random);
        }
    }

    private static (double[] Values, double[,] Vectors) DirectlyFull(double[] a, int d, int k)
    {
        (double[] values, double[][] vectors) = Jacobi((double[])a.Clone(), d);
        return Result(values, vectors, d, k);
    }

    private static double[] Random(int d, SplitMix64 random)
    {
        var vector = new double[d];
        for (int i = 0; i < d; i++) vector[i] = random.NextSigned();
        return vector;
    }

    /// <summary>
    /// <c>T_m(L) X / T_m(L(top))</c> with <c>L = (A - c I) / e</c> mapping [lo, hi] onto [-1, 1]: the scaled three-term
    /// recurrence of Zhou and Saad (2007), Algorithm 3.2. When the interval is empty, one product with <c>A - lo I</c>.
    /// </summary>
    private static double[][] Filter(double[] a, int d, double[][] x, double lo, double hi, double top)
    {
        if (!(hi > lo) || !(top > hi))
        {
            double[][] shifted = Multiply(a, d, x);
            for (int c = 0; c < x.Length; c++)
                for (int i = 0; i < d; i++) shifted[c][i] -= lo * x[c][i];
            return shifted;
        }
        double e = (hi - lo) / 2, centre = (hi + lo) / 2, sigma1 = e / (top - centre), sigma = sigma1;
        double[][] previous = x, current = Multiply(a, d, x);
        for (int c = 0; c < x.Length; c++)
            for (int i = 0; i < d; i++) current[c][i] = (current[c][i] - centre * x[c][i]) * (sigma1 / e);
        for (int degree = 2; degree <= FilterDegree; degree++)
        {
            double next = 1 / (2 / sigma1 - sigma);
            double[][] following = Multiply(a, d, current);
            for (int c = 0; c < x.Length; c++)
                for (int i = 0; i < d; i++)
                    following[c][i] = (following[c][i] - centre * current[c][i]) * (2 * next / e) - sigma * next * previous[c][i];
            (previous, current, sigma) = (current, following, next);
        }
        return current;
    }

    /// <summary>Modified Gram–Schmidt, twice (enough for orthogonality to rounding); a column that vanishes is replaced by a fresh random one.</summary>
    private static void Orthonormalise(double[][] block, SplitMix64 random)
    {
        for (int c = 0; c < block.Length; c++)
        {
            for (int attempt = 0; ; attempt++)
            {
                double before = Math.Sqrt(Dot(block[c], block[c]));
                for (int pass = 0; pass < 2; pass++)
                    for (int r = 0; r < c; r++) Axpy(-Dot(block[r], block[c]), block[r], block[c]);
                double after = Math.Sqrt(Dot(block[c], block[c]));
                if (after > 1e-10 * before && after > 0)
                {
                    for (int i = 0; i < block[c].Length; i++) block[c][i] /= after;
                    break;
                }
                if (attempt == 8) throw new InvalidOperationException("could not extend the block to an orthonormal basis");
                for (int i = 0; i < block[c].Length; i++) block[c][i] = random.NextSigned();
            }
        }
    }

    /// <summary>
    /// Cyclic Jacobi on a symmetric n×n matrix (row-major, destroyed): eigenvalues descending and unit eigenvectors, each
    /// pair sorted together (Rutishauser's rotation, as in Numerical Recipes' <c>jacobi</c>): the first three sweeps skip
    /// entries below a threshold, later ones zero an entry too small to change either diagonal value it sits between.
    /// </summary>
    private static (double[] Values, double[][] Vectors) Jacobi(double[] h, int n)
    {
        var v = new double[n][];
        for (int i = 0; i < n; i++) { v[i] = new double[n]; v[i][i] = 1; }   // v[c] is eigenvector c
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++) off += Math.Abs(h[p * n + q]);
            if (off == 0) break;
            double threshold = sweep < 3 ? 0.2 * off / ((double)n * n) : 0;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = h[p * n + q], app = h[p * n + p], aqq = h[q * n + q], g = 100 * Math.Abs(apq);
                    if (sweep > 3 && Math.Abs(app) + g == Math.Abs(app) && Math.Abs(aqq) + g == Math.Abs(aqq))
                    {
                        h[p * n + q] = h[q * n + p] = 0;
                        continue;
                    }
                    if (Math.Abs(apq) <= threshold) continue;
                    double theta = (aqq - app) / (2 * apq);
                    double t = theta == 0 ? 1
                        : Math.Abs(theta) > 1e150 ? 1 / (2 * theta)
                        : Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double cos = 1 / Math.Sqrt(t * t + 1), sin = t * cos;
                    for (int r = 0; r < n; r++)
                    {
                        double hrp = h[r * n + p], hrq = h[r * n + q];
                        h[r * n + p] = cos * hrp - sin * hrq;
                        h[r * n + q] = sin * hrp + cos * hrq;
                    }
                    for (int c = 0; c < n; c++)
                    {
                        double hpc = h[p * n + c], hqc = h[q * n + c];
                        h[p * n + c] = cos * hpc - sin * hqc;
                        h[q * n + c] = sin * hpc + cos * hqc;
                    }
                    h[p * n + q] = h[q * n + p] = 0;
                    for (int r = 0; r < n; r++)
                    {
                        double vp = v[p][r], vq = v[q][r];
                        v[p][r] = cos * vp - sin * vq;
                        v[q][r] = sin * vp + cos * vq;
                    }
                }
        }
        int[] order = [.. Enumerable.Range(0, n).OrderByDescending(i => h[i * n + i]).ThenBy(i => i)];
        return ([.. order.Select(i => h[i * n + i])], [.. order.Select(i => v[i])]);
    }

    /// <summary>The first k pairs, vectors normalised and signed (largest-magnitude component positive), as [k, d] rows.</summary>
    private static (double[] Values, double[,] Vectors) Result(double[] values, double[][] vectors, int d, int k)
    {
        var rows = new double[k, d];
        for (int i = 0; i < k; i++)
        {
            double[] vector = vectors[i];
            int largest = 0;
            for (int j = 1; j < d; j++)
                if (Math.Abs(vector[j]) > Math.Abs(vector[largest])) largest = j;
            double scale = Math.Sign(vector[largest]) / Math.Sqrt(Dot(vector, vector));
            for (int j = 0; j < d; j++) rows[i, j] = vector[j] * scale;
        }
        return (values[..k], rows);
    }

    private static double[][] Identity(int d)
    {
        var vectors = new double[d][];
        for (int i = 0; i < d; i++) { vectors[i] = new double[d]; vectors[i][i] = 1; }
        return vectors;
    }

    /// <summary>A times each column of the block (A row-major d×d), rows over the cores when large.</summary>
    private static double[][] Multiply(double[] a, int d, double[][] block)
    {
        var result = new double[block.Length][];
        for (int c = 0; c < block.Length; c++) result[c] = new double[d];
        void Row(int i)
        {
            ReadOnlySpan<double> row = a.AsSpan(i * d, d);
            for (int c = 0; c < block.Length; c++) result[c][i] = Dot(row, block[c]);
        }
        if ((long)d * d * block.Length < 1 << 20)
            for (int i = 0; i < d; i++) Row(i);
        else Parallel.For(0, d, Row);
        return result;
    }

    /// <summary><c>out[c] = Σ_r block[r] w[c][r]</c>: the block times the matrix whose columns are w's vectors.</summary>
    private static double[][] Combine(double[][] block, double[][] w, int d)
    {
        var result = new double[w.Length][];
        for (int c = 0; c < w.Length; c++)
        {
            result[c] = new double[d];
            for (int r = 0; r < block.Length; r++) Axpy(w[c][r], block[r], result[c]);
        }
        return result;
    }

    private static double Dot(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        double sum = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<double>.Count)
        {
            ReadOnlySpan<Vector<double>> xs = MemoryMarshal.Cast<double, Vector<double>>(x), ys = MemoryMarshal.Cast<double, Vector<double>>(y);
            Vector<double> total = Vector<double>.Zero;
            for (int v = 0; v < xs.Length; v++) total += xs[v] * ys[v];
            sum = Vector.Sum(total);
            i = xs.Length * Vector<double>.Count;
        }
        for (; i < x.Length; i++) sum += x[i] * y[i];
        return sum;
    }

    private static void Axpy(double alpha, double[] x, double[] y)
    {
        for (int i = 0; i < y.Length; i++) y[i] += alpha * x[i];
    }

    private static double Square(double x) => x * x;

    /// <summary>2^-52, the spacing of doubles at 1.</summary>
    private static readonly double MachineEpsilon = Math.ScaleB(1, -52);

    /// <summary>SplitMix64 (Steele, Lea and Flood): a fixed, portable stream, so start blocks are the same everywhere.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        /// <summary>Uniform in [-1, 1).</summary>
        public double NextSigned()
        {
            ulong z = _state += 0x9E37_79B9_7F4A_7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
            z ^= z >> 31;
            return (z >> 11) * Math.ScaleB(1, -52) - 1;
        }
    }
}
