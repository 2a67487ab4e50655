using NativeTensor.Cpu;

namespace NativeTensor;

/// <summary>
/// Streaming first and second moments of <see cref="Groups"/> groups (e.g. layers) of <see cref="Features"/> features:
/// the row count, each group's mean vector and its scatter matrix <c>M2 = Σ (x - μ)(x - μ)^T</c>, from which come
/// <see cref="Covariance"/>, <see cref="Variance"/> and <see cref="Correlation"/>. States are a monoid: <see cref="Merge"/>
/// combines shards exactly as if their rows had been seen by one state (Chan, Golub and LeVeque's pairwise update), and
/// <see cref="ToBytes"/>/<see cref="FromBytes"/> carry a state between processes, so any reduce engine can combine shards.
/// The principal components of a state's covariance come from <c>NativeTensor.Training.StreamingPca</c> (the Training
/// assembly, which builds on these kernels; this class is the op family and lives with the other ops in
/// <c>NativeTensor</c>).
/// </summary>
/// <remarks>
/// <para><b>Where the numbers live.</b> The state is Float64 on the host, whatever <see cref="Device"/> the batches are on:
/// a merge is O(d²) per group while a batch's scatter is O(n d²), so the state is never the bottleneck, and double makes
/// merging many shards add nothing measurable to the error. Of the issue's two options (Float64 on the host, or Float32
/// with a compensated merge on devices) the state takes the first and a batch on a device the second: within one
/// <see cref="Update"/> on an OpenCL or CUDA device the batch never leaves the device, its scatter blocks accumulate there
/// in Float32 (hi, lo) pairs by TwoSum, and only the column sums and each group's pair come back, once per batch
/// (<c>kernels/moments.cl</c>). For a [4096, 1024] batch that is 8.7 MB instead of the batch (16.8 MB) plus 32 block
/// results of 4.2 MB.</para>
/// <para><b>How a batch is folded in</b> (full mode, per group): (1) column means in double; (2) each row centred in
/// Float32 against that mean rounded to Float32 (subtracting nearby values is exact, Sterbenz); (3) the scatter
/// <c>S = Y^T Y</c> of the centred rows by <see cref="Linalg.Syrk"/>'s kernel on <see cref="Device"/>, in blocks of at most
/// <see cref="ScatterBlockRows"/> rows; (4) the exact correction for the rounded mean, <c>M2 = S - n c c^T</c> with c the
/// mean of the centred rows; (5) Chan's merge into the state: <c>δ = μ_b - μ_a</c>, <c>μ = μ_a + δ n_b / n</c>,
/// <c>M2 = M2_a + M2_b + δ δ^T n_a n_b / n</c>. On the CPU, steps 1, 2 and 4 run on the host in double (c summed from the
/// centred rows) and each block's Float32 S is added into double. On a device, (1) is a compensated Float32 sum per column
/// over chunks of at least 128 rows (TwoSum cascades, at most 64 chunks, their (hi, lo) pairs added in double on the
/// host), (2) and (3) run block by block on the device and each block's S is added into the group's (hi, lo) pair there,
/// and (4) takes c = μ - pivot in double (exact, Sterbenz) after reading hi and lo once.</para>
/// <para><b>Error.</b> On the CPU only step (3) rounds to Float32 accumulation: every block sums at most 128 products, so
/// each entry's error is at most <c>γ_130 · sqrt(D_j D_k)</c> with <c>γ_m = m u / (1 - m u)</c>, u = 2^-24 (≈ 7.7e-6)
/// and D_j the sum of squares of centred feature j (the variance times the count, plus a negligible term from the rounded
/// mean). That bound holds for any data, whatever its mean; the mean itself is exact to double rounding. On a device, the
/// pair's accumulation of a batch's B blocks is Ogita, Rump and Oishi's Sum2 without its final rounding ("Accurate sum and
/// dot product", SIAM J. Sci. Comput. 26(6), 2005, Prop. 4.5): it adds at most <c>γ_(B-1)² (1 + γ_130) sqrt(D_j D_k)</c>
/// (3.4e-12 relative at B = 32, a 4096-row batch); the column sums leave each mean within <c>γ_(m-1)² max|x|</c> (m =
/// max(128, n / 64) rows per chunk: 5.7e-11 relative up to 8192 rows a batch); and deriving c from that mean instead of
/// summing the centred rows adds at most <c>n e (4u + 3e) X_j X_k</c>, e that mean error relative to X = max|x|
/// (1.4e-17 n X_j X_k at 128-row chunks). The device bound is the CPU's plus these worst-case terms, which only batches
/// far past 8192 rows or data whose mean exceeds its spread 10^5-fold make visible (tests/Infrastructure/MomentsErrorBound.cs).
/// Measured on data with mean 1e4 and unit variance ([2048, 8] Float32 in batches of 512) against
/// <see cref="Reference.MomentsReference"/>: max-norm relative error (max |C - C_ref| / max |C_ref|) 1.7e-7, Frobenius
/// 1.3e-7, on the CPU and on OpenCL (PoCL) alike. The naive
/// <c>(Σ x x^T - n μ μ^T) / (n - 1)</c> through the same Float32 Syrk blocks gives 8.6 (no correct digit); in double it
/// would give 3.5e-7, because double has eight more digits to lose, which a Float32 device does not. At [4096, 1024]
/// (<c>perf moments</c>): 5.3e-7 on the CPU and on OpenCL; NumPy's centred float32 GEMM on the same batch: 7.0e-4.</para>
/// <para><b>Diagonal-only mode</b> (<c>diagonalOnly: true</c>) keeps only the variances: no Syrk, the two passes run in
/// double on the host, O(G d) state; <see cref="Covariance"/> and <see cref="Correlation"/> then throw. A batch on a
/// device is read to the host in chunks for it: there is no d×d work to keep on the device.</para>
/// <para><b>Non-finite values.</b> By default NaN and ±Inf propagate as IEEE arithmetic makes them: a non-finite value
/// in feature j of any row makes that group's mean j and every covariance entry in row and column j non-finite, from then
/// on (later batches cannot wash it out), and leaves every other entry as it would be without that feature; the row
/// still counts. (On a device an Inf becomes NaN in the compensated sums: t - z is Inf - Inf.) With
/// <c>skipNonFiniteRows: true</c>, a row (one sample, all its groups) holding any NaN or ±Inf is left out and counted in
/// <see cref="NonFiniteRows"/> instead of <see cref="Count"/>.</para>
/// <para><b>Range.</b> The scatter blocks are Float32 sums of 128 centred squares, and on a device the column sums are
/// Float32 too: finite data overflow them once |x - mean| passes about 1.6e18, or (device column sums) once a column's
/// sum passes float's 3.4e38. Scale such data first; the host's double state has no such limit.</para>
/// <para>Instances are not thread-safe. Every method validates all of its arguments before changing anything, and an
/// <see cref="Update"/> that fails on the device leaves the state as it was (the device path builds the batch's moments
/// in scratch buffers and merges only once every read-back has succeeded).</para>
/// </remarks>
public sealed partial class Moments
{
    /// <summary>Rows per Float32 scatter block: the bound γ_(128+2) ≈ 7.7e-6 stays under the 1e-5 the issue asks for.</summary>
    public const int ScatterBlockRows = 128;

    private readonly double[] _mean;   // [groups, features]
    private readonly double[] _m2;     // [groups, features, features] of which the upper triangle k >= j is read, or [groups, features] when diagonal-only

    /// <summary>An empty state: no rows, zero means and scatters.</summary>
    /// <param name="features">Features per group, d (at least 1).</param>
    /// <param name="groups">Groups G (at least 1); batches are [n, d] when G is 1, else [n, G, d].</param>
    /// <param name="device">Where <see cref="Update"/>'s batches live and its Syrk runs; null is <see cref="NativeTensor.Device.Default"/>.</param>
    /// <param name="diagonalOnly">Keep only variances (O(G d) state, no Syrk); see the remarks.</param>
    /// <param name="skipNonFiniteRows">Leave rows with NaN or ±Inf out and count them in <see cref="NonFiniteRows"/>, instead of propagating.</param>
    /// <exception cref="ArgumentOutOfRangeException">features or groups is below 1, or the state would need more than
    /// <see cref="Array.MaxLength"/> doubles.</exception>
    public Moments(int features, int groups = 1, Device? device = null, bool diagonalOnly = false, bool skipNonFiniteRows = false)
    {
        if (features < 1)
            throw new ArgumentOutOfRangeException(nameof(features), features, $"features = {features}: must be at least 1");
        if (groups < 1)
            throw new ArgumentOutOfRangeException(nameof(groups), groups, $"groups = {groups}: must be at least 1");
        long scatter = (long)groups * features * (diagonalOnly ? 1 : features);
        if (scatter > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(features), features,
                $"{groups} groups x {features} features need {scatter:N0} scatter values: more than an array holds ({Array.MaxLength:N0}); use diagonalOnly or fewer features");
        Features = features;
        Groups = groups;
        Device = device ?? Device.Default;
        DiagonalOnly = diagonalOnly;
        SkipsNonFiniteRows = skipNonFiniteRows;
        _mean = new double[groups * features];
        _m2 = new double[scatter];
    }

    /// <summary>Features per group, d.</summary>
    public int Features { get; }

    /// <summary>Groups, G.</summary>
    public int Groups { get; }

    /// <summary>Where <see cref="Update"/> expects its batches and runs its Syrk. The state itself is on the host.</summary>
    public Device Device { get; }

    /// <summary>Whether only variances are kept.</summary>
    public bool DiagonalOnly { get; }

    /// <summary>Whether rows with NaN or ±Inf are left out (and counted in <see cref="NonFiniteRows"/>) rather than propagated.</summary>
    public bool SkipsNonFiniteRows { get; }

    /// <summary>Rows folded in so far (each row holds one sample of every group).</summary>
    public long Count { get; private set; }

    /// <summary>Rows left out for holding NaN or ±Inf (only when <see cref="SkipsNonFiniteRows"/>; merged states add theirs).</summary>
    public long NonFiniteRows { get; private set; }

    /// <summary>
    /// Folds in a batch of rows: <paramref name="batch"/> is [n, features] (when <see cref="Groups"/> is 1) or
    /// [n, groups, features], Float32, Float16 or BFloat16, on <see cref="Device"/>. n may be 0 (nothing changes).
    /// </summary>
    /// <exception cref="ArgumentNullException">batch is null.</exception>
    /// <exception cref="ObjectDisposedException">batch was disposed.</exception>
    /// <exception cref="ArgumentException">batch is not a float dtype, is on another device, or its shape does not match the state.</exception>
    /// <exception cref="OverflowException">The row count or the skipped-row count would pass <see cref="long.MaxValue"/> (nothing changes).</exception>
    public void Update(Tensor batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ObjectDisposedException.ThrowIf(batch.IsDisposed, batch);
        if (!Precision.IsFloatingPoint(batch.DType))
            throw new ArgumentException($"batch is {batch.DType}: must be Float32, Float16 or BFloat16", nameof(batch));
        if (batch.Device != Device)
            throw new ArgumentException($"batch is on {batch.Device} but this state updates on {Device}: move it with batch.To(device)", nameof(batch));
        string expected = Groups == 1 ? $"[n, {Features}] or [n, 1, {Features}]" : $"[n, {Groups}, {Features}]";
        bool fits = batch.Rank switch
        {
            2 => Groups == 1 && batch.Shape[1] == Features,
            3 => batch.Shape[1] == Groups && batch.Shape[2] == Features,
            _ => false,
        };
        if (!fits)
            throw new ArgumentException(
                $"batch is [{string.Join(", ", batch.Shape)}] but this state has {Groups} group(s) of {Features} features: pass {expected}", nameof(batch));
        if (batch.Shape[0] == 0) return;
        BatchMoments part = Summarise(batch);   // everything that can fail happens before the state changes
        long skipped = checked(NonFiniteRows + part.Skipped);
        _ = checked(Count + part.Count);
        NonFiniteRows = skipped;
        if (part.Folded) Count = checked(Count + part.Count);
        else if (part.Count > 0) Combine(part.Count, part.Mean, part.M2);
    }

    /// <summary>
    /// Adds <paramref name="other"/>'s rows to this state, as if this state had seen them too (Chan's pairwise merge in
    /// double). <paramref name="other"/> is unchanged; it may be this state itself (its rows then count twice), on any device.
    /// </summary>
    /// <exception cref="ArgumentNullException">other is null.</exception>
    /// <exception cref="ArgumentException">other has another number of groups or features, or another mode (diagonal-only or full).</exception>
    /// <exception cref="OverflowException">The merged row count or skipped-row count would pass <see cref="long.MaxValue"/> (nothing changes).</exception>
    public void Merge(Moments other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Groups != Groups || other.Features != Features || other.DiagonalOnly != DiagonalOnly)
            throw new ArgumentException(
                $"other is {other.Describe()} but this state is {Describe()}: only states of the same shape and mode merge", nameof(other));
        long skipped = checked(NonFiniteRows + other.NonFiniteRows);
        _ = checked(Count + other.Count);   // both totals checked before either changes
        NonFiniteRows = skipped;
        if (other.Count > 0) Combine(other.Count, (double[])other._mean.Clone(), (double[])other._m2.Clone());
    }

    /// <summary>The mean of each feature of <paramref name="group"/> over all rows so far (a new array).</summary>
    /// <exception cref="ArgumentOutOfRangeException">group is not in [0, <see cref="Groups"/>).</exception>
    /// <exception cref="InvalidOperationException">No row has been folded in yet.</exception>
    public double[] Mean(int group = 0)
    {
        CheckGroup(group);
        if (Count == 0) throw new InvalidOperationException("the state holds no rows yet: Update or Merge before asking for the mean");
        return _mean.AsSpan(group * Features, Features).ToArray();
    }

    /// <summary><c>var[j] = M2[j, j] / (Count - ddof)</c> for <paramref name="group"/>; available in both modes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">group is out of range, ddof is negative, or ddof &gt;= <see cref="Count"/>.</exception>
    public double[] Variance(int group = 0, int ddof = 1)
    {
        CheckGroup(group);
        double divisor = Divisor(ddof);
        var variance = new double[Features];
        for (int j = 0; j < Features; j++) variance[j] = Scatter(group, j, j) / divisor;
        return variance;
    }

    /// <summary>
    /// <c>C[j, k] = M2[j, k] / (Count - ddof)</c> for <paramref name="group"/>: with ddof 1 the unbiased sample covariance,
    /// as <c>np.cov</c>. Exactly symmetric.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">group is out of range, ddof is negative, or ddof &gt;= <see cref="Count"/>.</exception>
    /// <exception cref="InvalidOperationException">The state is diagonal-only.</exception>
    public double[,] Covariance(int group = 0, int ddof = 1)
    {
        CheckGroup(group);
        RequireFull(nameof(Covariance));
        double divisor = Divisor(ddof);
        var covariance = new double[Features, Features];
        for (int j = 0; j < Features; j++)
            for (int k = 0; k < Features; k++) covariance[j, k] = Scatter(group, j, k) / divisor;
        return covariance;
    }

    /// <summary>
    /// Pearson correlation <c>R[j, k] = M2[j, k] / sqrt(M2[j, j] M2[k, k])</c> for <paramref name="group"/>, clamped to
    /// [-1, 1] with an exact 1 on the diagonal. A feature with zero variance gets NaN in its row and column (0 / 0, as
    /// <c>np.corrcoef</c>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">group is out of range.</exception>
    /// <exception cref="InvalidOperationException">The state is diagonal-only, or holds no rows.</exception>
    public double[,] Correlation(int group = 0)
    {
        CheckGroup(group);
        RequireFull(nameof(Correlation));
        if (Count == 0) throw new InvalidOperationException("the state holds no rows yet: Update or Merge before asking for a correlation");
        var correlation = new double[Features, Features];
        for (int j = 0; j < Features; j++)
            for (int k = 0; k < Features; k++)
            {
                double r = Scatter(group, j, k) / Math.Sqrt(Scatter(group, j, j) * Scatter(group, k, k));
                correlation[j, k] = j == k && !double.IsNaN(r) ? 1 : Math.Clamp(r, -1, 1);
            }
        return correlation;
    }

    /// <inheritdoc/>
    public override string ToString() => $"Moments({Describe()}, count {Count}, on {Device.Spec})";

    private string Describe() => $"{Groups} group(s) x {Features} features, {(DiagonalOnly ? "diagonal-only" : "full")}";

    /// <summary>
    /// Chan's merge of a part (count, means, scatters in this state's layout: of a full scatter only the upper triangle
    /// k &gt;= j is read and written) into the state, per group, in double.
    /// </summary>
    private void Combine(long countB, double[] meanB, double[] m2B)
    {
        long countA = Count;
        long total = checked(countA + countB);
        if (countA == 0)
        {
            meanB.CopyTo(_mean, 0);
            m2B.CopyTo(_m2, 0);
            Count = total;
            return;
        }
        double share = (double)countB / total, weight = (double)countA * countB / total;
        int d = Features;
        var delta = new double[d];
        for (int g = 0; g < Groups; g++)
        {
            int at = g * d;
            for (int j = 0; j < d; j++)
            {
                delta[j] = meanB[at + j] - _mean[at + j];
                _mean[at + j] += delta[j] * share;
            }
            if (DiagonalOnly)
            {
                for (int j = 0; j < d; j++) _m2[at + j] += m2B[at + j] + delta[j] * delta[j] * weight;
                continue;
            }
            long block = (long)g * d * d;
            for (int j = 0; j < d; j++)
            {
                int jj = (int)(block + (long)j * d + j);
                MomentsKernels.AddMerged(_m2.AsSpan(jj, d - j), m2B.AsSpan(jj, d - j), delta[j], delta.AsSpan(j, d - j), weight);
            }
        }
        Count = total;
    }

    /// <summary>M2[j, k] of a group, read from the upper triangle whichever side is asked: exactly symmetric by construction.</summary>
    private double Scatter(int group, int j, int k) =>
        DiagonalOnly ? _m2[group * Features + j] : _m2[((long)group * Features + Math.Min(j, k)) * Features + Math.Max(j, k)];

    private double Divisor(int ddof)
    {
        if (ddof < 0 || ddof >= Count)
            throw new ArgumentOutOfRangeException(nameof(ddof), ddof,
                $"ddof = {ddof} with count {Count}: the divisor count - ddof must be > 0 (and ddof >= 0)");
        return Count - ddof;
    }

    private void CheckGroup(int group)
    {
        if (group < 0 || group >= Groups)
            throw new ArgumentOutOfRangeException(nameof(group), group, $"group = {group}: this state has {Groups} group(s), 0 to {Groups - 1}");
    }

    private void RequireFull(string what)
    {
        if (DiagonalOnly)
            throw new InvalidOperationException($"{what} needs the full scatter, but this state is diagonal-only: use Variance, or a state made with diagonalOnly: false");
    }
}
