namespace NativeTensor.Training;

/// <summary>
/// The top-k eigenpairs of a symmetric matrix: principal components of a <see cref="Moments"/> covariance, or the
/// directions that separate two populations, the eigenvectors of a contrastive difference <c>cov(bad) - cov(good)</c>.
/// The moments themselves are the <see cref="Moments"/> op family in namespace <c>NativeTensor</c> (every op lives
/// there, beside <see cref="Tensor"/>); this is the training layer that reads them.
/// </summary>
/// <remarks>
/// <para><b>Top-k</b> means the k <em>largest algebraic</em> eigenvalues (for a covariance, the largest variances; for an
/// indefinite difference, the directions where the first population varies most beyond the second; the most negative
/// ones are the top-k of the difference taken the other way round).</para>
/// <para><b>Method.</b> Blocked subspace iteration with Rayleigh–Ritz: a block of p = min(d, max(2k, k + 8)) orthonormal
/// vectors is multiplied by a polynomial in A, re-orthonormalised, and A is projected onto it; the small p×p projection is
/// diagonalised by cyclic Jacobi rotations. Plain subspace iteration converges to the eigenvalues largest in
/// <em>magnitude</em>; the polynomial used here is the Chebyshev polynomial of degree at most 8 that is bounded by 1 on
/// [lo, θ_p] and grows fast above it (Zhou and Saad's filtered subspace iteration), where lo is a lower bound on the
/// smallest eigenvalue and θ_p the block's smallest Ritz value. So the largest algebraic eigenvalues are the ones
/// amplified, whatever the sign of the rest, and flat spectra converge in tens of iterations rather than thousands. Each
/// Ritz vector v is filtered as v plus a correction built from its residual A v - θ v alone, which saves one product per
/// iteration and lets Float32 products build the correction without limiting the accuracy (see below). The degree is 8
/// unless a lower one is predicted to reach the tolerance with a factor of 100 to spare (the last iteration, typically).
/// When p = d the projection is A itself and Jacobi solves it directly.</para>
/// <para><b>The interval's lower end</b> is a proven bound, the larger of Gershgorin's and -‖A‖_F, except for
/// <see cref="TopK(Moments, int, int)"/>: a covariance is positive semidefinite up to Moments' rounding (its 2-norm is
/// below γ_130 trace(C) ≈ 7.7e-6 trace(C), each scatter entry being within γ_130 sqrt(D_j D_k)), so lo is -2^-10 trace(C),
/// 127 times lower. Far tighter than -‖A‖_F, it makes the filter converge several times faster (17 iterations become 4 on
/// a 1024-feature power-law covariance). A lo above the smallest eigenvalue by δ would only amplify that direction by
/// about 1 + 2 m² δ / (θ_p - lo), harmless unless δ rivals the gap the iteration converges across.</para>
/// <para><b>Convergence</b> is declared when every one of the k pairs has a residual ‖A v - λ v‖ ≤ 64 sqrt(d) ε ‖A‖_F
/// (ε = 2^-52), which bounds each eigenvalue's error by that residual squared over its gap and each vector's angle by the
/// residual over its gap. When <see cref="IterationsPerBlock"/> iterations are not enough (the k-th eigenvalue sits in a
/// dense cluster, so no gap follows the block), the block doubles, keeping its Ritz vectors; once it would reach d, Jacobi
/// on A itself finishes. So TopK always returns converged pairs; that worst case costs O(d³).</para>
/// <para><b>On a device.</b> <see cref="TopK(Tensor, int)"/> runs the same iteration with every product by A (d²p
/// multiply-adds, the whole cost) as a Float32 <see cref="Linalg.MatMul"/> on the matrix's device, and only the d×p
/// block's orthonormalisation, the filter's vector recurrences and the p×p Jacobi in double on the host; its accuracy is
/// Float32's, stated there. The <see cref="Moments"/> overloads, from <see cref="DeviceMinimumFeatures"/> features on,
/// upload the covariance (or difference) once as Float32 to the state's device and iterate there until Float32 stops
/// improving the block; then they refine against the exact double matrix: each refining iteration takes its Rayleigh–Ritz
/// product and residuals in double on the host (one product of d²p) while the filter's correction, which only has to be
/// as accurate relative to itself as Float32 allows, still comes from the device. Each such iteration gains what the
/// filter gains, down to about u = 2^-24 per iteration, so a few reach the convergence test above (three for a 1024-feature
/// power-law covariance, six for a flat one, where each filter gains less), and the result has the double path's
/// accuracy.</para>
/// <para><b>Determinism and signs.</b> The start block comes from a fixed-seed SplitMix64 stream and every loop has a
/// fixed order, so the same matrix gives the same bits on the same machine (the host's dot products follow the machine's
/// vector width; on a device, as far as the device's MatMul is deterministic).
/// Each eigenvector is returned with its largest-magnitude component positive (the first such component on an exact
/// tie). Eigenvectors of a repeated eigenvalue are any orthonormal basis of its space.</para>
/// </remarks>
public static partial class StreamingPca
{
    /// <summary>The largest <c>|A[i, j] - A[j, i]|</c> accepted, relative to the largest <c>|A[i, j]|</c>; the matrix used is <c>(A + A^T) / 2</c>.</summary>
    /// <remarks>Covariances from <see cref="Moments"/> and their differences are exactly symmetric; 1e-9 leaves room for a
    /// matrix assembled with rounding elsewhere while still refusing one that is not symmetric at all (a wrong layout).</remarks>
    public const double SymmetryTolerance = 1e-9;

    /// <summary>Filtered iterations (each a Chebyshev polynomial of degree at most 8, plus one product for Rayleigh–Ritz) before the block doubles.</summary>
    public const int IterationsPerBlock = 50;

    /// <summary>
    /// The <see cref="Moments"/> overloads run the bulk of their products in Float32 on <see cref="Moments.Device"/> from
    /// this many features on (and when the block is smaller than d); below it, on the host in double throughout.
    /// </summary>
    /// <remarks>Measured on a shared 2-core EPYC (AVX-512) with the cpu device, k = 16, covariances of 4d rows, device path
    /// against the host path with the same interval: at 128 features both take under 15 ms and their order flips from run
    /// to run; from 256 on the device path is as fast or faster: <c>perf moments</c> at 1024 (power-law spectrum) 69 against
    /// 120 ms (339 ms for <see cref="TopK(double[,], int)"/>'s Gershgorin interval); at 2048, 234 against 389 ms, and 867
    /// against 2377 ms for a flat spectrum. On an OpenCL device emulated on the CPU (PoCL, whose Float32 products run at
    /// ~10 GFLOP/s, below the host's double ones) the device path is slower (654 ms at 1024); on a GPU the Float32 products
    /// cost next to nothing and the few double products of the refinement are what remains.</remarks>
    public const int DeviceMinimumFeatures = 256;

    private const int FilterDegree = 8;

    /// <summary>The lower end of a covariance's filter interval, relative to its trace (see the class remarks).</summary>
    private static readonly double SemidefiniteMargin = Math.ScaleB(1, -10);

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
        return Solve(a, d, k, device: null, semidefinite: false);
    }

    /// <summary>
    /// The top-k principal components of one group of <paramref name="moments"/>: the eigenpairs
    /// <c>TopK(moments.Covariance(group), k)</c> returns, to the same accuracy. From <see cref="DeviceMinimumFeatures"/>
    /// features on, the covariance is uploaded once as Float32 to <see cref="Moments.Device"/>, iterated there until
    /// Float32 stops improving it, and refined on the host in double (see the class remarks).
    /// </summary>
    /// <exception cref="ArgumentNullException">moments is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">group or k is out of range, or the state holds fewer than 2 rows.</exception>
    /// <exception cref="ArgumentException">The covariance holds NaN or ±Inf (non-finite rows were propagated).</exception>
    /// <exception cref="InvalidOperationException">The state is diagonal-only.</exception>
    public static (double[] Values, double[,] Vectors) TopK(Moments moments, int group, int k)
    {
        ArgumentNullException.ThrowIfNull(moments);
        return TopK(moments, group, k, moments.Device);
    }

    /// <summary><see cref="TopK(Moments, int, int)"/> with the bulk on <paramref name="device"/>, or all on the host when it is null (perf compares the two).</summary>
    internal static (double[] Values, double[,] Vectors) TopK(Moments moments, int group, int k, Device? device)
    {
        double[] a = Checked(moments.Covariance(group), k, out int d);
        return Solve(a, d, k, device, semidefinite: true);
    }

    /// <summary>
    /// The top-k eigenpairs of <c>cov(bad) - cov(good)</c> (both with ddof 1) for one group: the directions along which
    /// <paramref name="bad"/> varies most beyond <paramref name="good"/>. Values can be negative. Like
    /// <see cref="TopK(Moments, int, int)"/>, the bulk runs on <paramref name="bad"/>'s device from
    /// <see cref="DeviceMinimumFeatures"/> features on and is refined on the host in double.
    /// </summary>
    /// <exception cref="ArgumentNullException">bad or good is null.</exception>
    /// <exception cref="ArgumentException">The two states have different groups or features, or the difference is not finite.</exception>
    /// <exception cref="ArgumentOutOfRangeException">group or k is out of range, or a state has fewer than 2 rows (ddof 1).</exception>
    /// <exception cref="InvalidOperationException">A state is diagonal-only (it keeps no covariance).</exception>
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
        double[] a = Checked(difference, k, out int d);
        return Solve(a, d, k, bad.Device, semidefinite: false);
    }

    /// <summary>
    /// The top-k pairs of the exactly symmetric row-major <paramref name="a"/>, to the double path's accuracy. With a
    /// <paramref name="device"/> (and d large enough), a Float32 run there first brings the block as close as Float32 can,
    /// and the host iteration in double starts from its Ritz vectors instead of a random block.
    /// </summary>
    private static (double[] Values, double[,] Vectors) Solve(double[] a, int d, int k, Device? device, bool semidefinite)
    {
        // Solve A / s for s the power of two at A's largest entry (exact scaling), so the norms below neither underflow
        // (entries under ~1e-162 would square to 0) nor overflow (entries over ~1e154), then scale the values back.
        double largest = 0;
        foreach (double v in a) largest = Math.Max(largest, Math.Abs(v));
        if (largest == 0) return Result(new double[d], Identity(d), d, k);
        double scale = Math.ScaleB(1, Math.ILogB(largest));
        if (scale == 1) return SolveScaled(a, d, k, device, semidefinite);
        (double[] values, double[,] vectors) = SolveScaled([.. a.Select(v => v / scale)], d, k, device, semidefinite);
        for (int i = 0; i < values.Length; i++) values[i] *= scale;
        return (values, vectors);
    }

    private static (double[] Values, double[,] Vectors) SolveScaled(double[] a, int d, int k, Device? device, bool semidefinite)
    {
        double frobenius = Frobenius(a);
        if (frobenius == 0) return Result(new double[d], Identity(d), d, k);
        int p = BlockSize(d, k);
        if (p == d) return DirectlyFull(a, d, k);
        var random = new SplitMix64(0x5EED_0F_7C_A0UL + (ulong)d);
        double lower = LowerBound(a, d, frobenius);
        if (semidefinite) lower = Math.Max(lower, -SemidefiniteMargin * Trace(a, d));
        var host = new HostProducts(a, d);
        double tolerance = 64 * Math.Sqrt(d) * DoubleEpsilon * frobenius;
        RitzPairs pairs;
        if (device is not null && d >= DeviceMinimumFeatures)
        {
            // The covariance goes to the device once, as Float32 A / s (s a power of two near its largest entry: exact, and
            // mid-range for Float32). Float32 products there bring a random block to Float32's accuracy; the refinement then
            // takes its residuals from double products on the host while its filter still runs on the device.
            using var onDevice = new DeviceProducts(a, d, device);
            double[][] seed = Iterate(onDevice, onDevice, k, RandomBlock(d, p, random), lower,
                SingleResidualFactor * Math.Sqrt(d) * SingleUnitRoundoff * frobenius, random, toFloor: true, seed: true).Vectors;
            pairs = Iterate(host, onDevice, k, seed, lower, tolerance, random, toFloor: false);
        }
        else pairs = Iterate(host, host, k, RandomBlock(d, p, random), lower, tolerance, random, toFloor: false);
        return pairs.Converged ? Result(pairs.Values, pairs.Vectors, d, k) : DirectlyFull(a, d, k);
    }

    /// <summary>The block: twice k, and at least 8 more than k, so a gap after the k-th value usually lies inside it.</summary>
    private static int BlockSize(int d, int k) => Math.Min(d, Math.Max(2 * k, k + 8));

    /// <summary>Validates and returns <c>(A + A^T) / 2</c> flattened row-major.</summary>
    private static double[] Checked(double[,] symmetric, int k, out int d)
    {
        ArgumentNullException.ThrowIfNull(symmetric);
        d = symmetric.GetLength(0);
        if (symmetric.GetLength(1) != d || d == 0)
            throw new ArgumentException($"symmetric is [{d}, {symmetric.GetLength(1)}]: must be square with at least one row", nameof(symmetric));
        CheckK(k, d);
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

    private static void CheckK(int k, long d)
    {
        if (k < 1 || k > d)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"k = {k}: must be in [1, {d}] for a {d}x{d} matrix");
    }
}
