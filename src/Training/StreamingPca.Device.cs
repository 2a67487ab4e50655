namespace NativeTensor.Training;

public static partial class StreamingPca
{
    /// <summary>
    /// The Float32 path's convergence test: every one of the k pairs has a computed residual
    /// <c>‖A v - λ v‖ ≤ SingleResidualFactor · sqrt(d) · u · ‖A‖_F</c>, u = 2^-24: the double path's test with u for ε.
    /// </summary>
    public const double SingleResidualFactor = 64;

    /// <summary>
    /// The asymmetry <see cref="TopK(Tensor, int)"/> accepts: <c>‖A - A^T‖_F ≤ SingleSymmetryFactor · sqrt(d) · u · ‖A‖_F</c>,
    /// u = 2^-24. The products use A as given, so the asymmetric part E = (A - A^T)/2 moves each residual with respect to
    /// the symmetric part by at most ‖E‖_2 ≤ ‖E‖_F, which this keeps to an eighth of <see cref="SingleResidualFactor"/>'s test.
    /// </summary>
    public const double SingleSymmetryFactor = SingleResidualFactor / 4;

    /// <summary>
    /// <see cref="TopK(Tensor, int)"/> runs on the device only while the largest |A[i, j]| is within [2^-SingleRangeExponent,
    /// 2^SingleRangeExponent]: each row of a block goes up scaled by a power of two to at most 2 in magnitude, so no entry of
    /// a Float32 product exceeds 2 d 2^60, far from overflow, and underflow, at most (d + 2) 2^-149 per entry, stays far
    /// below u times the entries of A. Outside it the host solves in double.
    /// </summary>
    public const int SingleRangeExponent = 60;

    private static readonly double SingleUnitRoundoff = Math.ScaleB(1, -24);

    /// <summary>
    /// The <paramref name="k"/> largest eigenvalues of the Float32 matrix <paramref name="symmetric"/> (on any device),
    /// descending, and unit eigenvectors as the rows of <c>Vectors</c> [k, d], signed as <see cref="TopK(double[,], int)"/>'s.
    /// Every product by A is a Float32 <see cref="Linalg.MatMul"/> on the matrix's device (the block of p =
    /// min(d, max(2k, k + 8)) vectors goes up as Float32 [p, d] and <c>X A</c> comes back); orthonormalisation, the filter's
    /// recurrences and Rayleigh–Ritz run in double on the host, on d×p and p×p data.
    /// </summary>
    /// <remarks>
    /// <para><b>Accuracy</b> is Float32's. The iteration stops once every one of the k computed residuals is below
    /// <c>τ = 64 sqrt(d) u ‖A‖_F</c> (<see cref="SingleResidualFactor"/>, u = 2^-24), and goes on while an iteration still
    /// halves the worst one, so that where convergence is fast it ends where Float32 rounding stops it. With S = (A + A^T)/2,
    /// the matrix whose pairs are returned, and γ_n = n u / (1 - n u), each returned pair satisfies
    /// <code>‖S v - λ v‖ ≤ ρ = [ (9/8) · 64 sqrt(d) u + sqrt(p) (u + γ_(d+2) (1 + u)) + (p + 1) γ'_(p+2) ] ‖A‖_F</code>
    /// (plus sqrt(p d) (d + 2) 2^-149 for underflow), p the block size at convergence: the computed residual is below τ; the
    /// true one differs from it by A (Q - fl(Q)) w (the block rounded to Float32 on upload, at most u ‖A‖_2 ‖Q‖_F), by the
    /// rounding of the Float32 product, entrywise at most γ_(d+2) |A| |fl(Q)| in any summation order (Higham, Accuracy and
    /// Stability of Numerical Algorithms, §3.1), by the asymmetric part (at most τ / 8, see <see cref="SingleSymmetryFactor"/>),
    /// and by the double arithmetic on the host (sums of p vectors and a subtraction; γ' is γ with u = 2^-53). Hence each λ
    /// lies within ρ of an eigenvalue of S (within about ρ² / gap when a gap separates it from the rest of the spectrum),
    /// and each v is within asin(ρ / (gap - ρ)) of its eigenvector (Davis–Kahan), the gap being the distance from λ to the
    /// nearest other eigenvalue; in a cluster, v is that close to the cluster's span, the gap then measured to the rest.
    /// Rounding errors seldom align, and measured errors are far inside ρ: where the iteration reaches Float32's floor (planted
    /// spectra, d 100 and 400, cpu and PoCL), under u ‖A‖_F for the values and under 2 u ‖A‖_F / gap for the vectors; where it
    /// converges slowly (a flat spectrum far above the Gershgorin bound), it stops nearer τ.</para>
    /// <para>When p = d, when the iteration would need the whole space (see the class remarks), or when the largest |A[i, j]|
    /// is outside the range of <see cref="SingleRangeExponent"/>, the host solves the same S in double instead, which meets
    /// the bound with room to spare. The host keeps one Float32 copy of A (4 d² bytes) for the checks and bounds.</para>
    /// </remarks>
    /// <param name="symmetric">Float32 [d, d], d &gt;= 1, finite, symmetric within <see cref="SingleSymmetryFactor"/>.</param>
    /// <param name="k">How many pairs: 1 to d.</param>
    /// <exception cref="ArgumentNullException">symmetric is null.</exception>
    /// <exception cref="ObjectDisposedException">symmetric was disposed.</exception>
    /// <exception cref="ArgumentException">symmetric is not a Float32 matrix, is not square, is empty, is too large for one
    /// host copy (d² above <see cref="Array.MaxLength"/>), holds NaN or ±Inf, or is not symmetric.</exception>
    /// <exception cref="ArgumentOutOfRangeException">k is not in [1, d].</exception>
    public static (double[] Values, double[,] Vectors) TopK(Tensor symmetric, int k)
    {
        float[] values = Checked(symmetric, k, out int d, out double frobenius, out double largest);
        if (frobenius == 0) return Result(new double[d], Identity(d), d, k);
        int p = BlockSize(d, k);
        bool inRange = largest >= Math.ScaleB(1, -SingleRangeExponent) && largest <= Math.ScaleB(1, SingleRangeExponent);
        if (p == d || !inRange) return Solve(Symmetrised(values, d), d, k, device: null, semidefinite: false);
        var random = new SplitMix64(0x5EED_0F_7C_A0UL + (ulong)d);
        double lower = LowerBound(values, d, frobenius);
        using var products = new DeviceProducts(symmetric, d, scale: 1);
        RitzPairs pairs = Iterate(products, products, k, RandomBlock(d, p, random), lower,
            SingleResidualFactor * Math.Sqrt(d) * SingleUnitRoundoff * frobenius, random, toFloor: true);
        return pairs.Converged ? Result(pairs.Values, pairs.Vectors, d, k) : DirectlyFull(Symmetrised(values, d), d, k);
    }

    /// <summary>Validates the device overload's arguments and returns the matrix's values (row-major), its Frobenius norm and largest |value|.</summary>
    private static float[] Checked(Tensor symmetric, int k, out int d, out double frobenius, out double largest)
    {
        ArgumentNullException.ThrowIfNull(symmetric);
        ObjectDisposedException.ThrowIf(symmetric.IsDisposed, symmetric);
        string shape = $"[{string.Join(", ", symmetric.Shape)}]";
        if (symmetric.Rank != 2)
            throw new ArgumentException($"symmetric has rank {symmetric.Rank} ({shape}): must be a square matrix (rank 2)", nameof(symmetric));
        long rows = symmetric.Shape[0];
        if (symmetric.Shape[1] != rows || rows == 0)
            throw new ArgumentException($"symmetric is {shape}: must be square with at least one row", nameof(symmetric));
        if (symmetric.DType != DType.Float32)
            throw new ArgumentException($"symmetric is {symmetric.DType}: must be Float32 (Precision.Convert widens 16-bit values exactly)", nameof(symmetric));
        if (rows * rows > Array.MaxLength)
            throw new ArgumentException(
                $"symmetric is {shape}: the host keeps one copy of its d² values for the checks and bounds, and an array holds at most {Array.MaxLength:N0} (d <= 46340)", nameof(symmetric));
        CheckK(k, rows);
        d = (int)rows;
        float[] values = symmetric.ToArray<float>();
        double squares = 0, asymmetry = 0, worst = -1;
        int worstRow = 0, worstColumn = 0;
        largest = 0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                double v = values[(long)i * d + j];
                if (!double.IsFinite(v))
                    throw new ArgumentException($"symmetric[{i}, {j}] = {v}: every entry must be finite", nameof(symmetric));
                squares += v * v;
                largest = Math.Max(largest, Math.Abs(v));
                double difference = Math.Abs(v - values[(long)j * d + i]);
                asymmetry += difference * difference;
                if (difference > worst) (worst, worstRow, worstColumn) = (difference, i, j);
            }
        frobenius = Math.Sqrt(squares);
        double allowed = SingleSymmetryFactor * Math.Sqrt(d) * SingleUnitRoundoff * frobenius;
        if (Math.Sqrt(asymmetry) > allowed)
            throw new ArgumentException(
                $"symmetric is not symmetric: ‖A - A^T‖_F = {Math.Sqrt(asymmetry):G3} exceeds {SingleSymmetryFactor} sqrt(d) 2^-24 ‖A‖_F = {allowed:G3}; " +
                $"the largest difference is symmetric[{worstRow}, {worstColumn}] = {values[(long)worstRow * d + worstColumn]:R} against " +
                $"symmetric[{worstColumn}, {worstRow}] = {values[(long)worstColumn * d + worstRow]:R}", nameof(symmetric));
        return values;
    }

    /// <summary><c>(A + A^T) / 2</c> in double, row-major.</summary>
    private static double[] Symmetrised(float[] values, int d)
    {
        var a = new double[values.Length];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) a[(long)i * d + j] = ((double)values[(long)i * d + j] + values[(long)j * d + i]) / 2;
        return a;
    }

    /// <summary><see cref="LowerBound(double[], int, double)"/> of <c>(A + A^T) / 2</c>, from the Float32 values without a double copy.</summary>
    private static double LowerBound(float[] values, int d, double frobenius)
    {
        double gershgorin = double.PositiveInfinity;
        for (int i = 0; i < d; i++)
        {
            double radius = 0;
            for (int j = 0; j < d; j++)
                if (j != i) radius += Math.Abs(((double)values[(long)i * d + j] + values[(long)j * d + i]) / 2);
            gershgorin = Math.Min(gershgorin, values[(long)i * d + i] - radius);
        }
        return Math.Max(gershgorin, -frobenius);
    }

    /// <summary>
    /// The products as Float32 <see cref="Linalg.MatMul"/>s on the matrix's device: a block of p vectors goes up as the rows
    /// of a Float32 [p, d] tensor X and <c>X A</c> comes back, whose rows are <c>(A^T x)^T = (A x)^T</c>. Each row is scaled
    /// by a power of two before it is rounded to Float32 and scaled back after (rows of the product are independent), so
    /// the small corrections of the refinement keep Float32's full relative accuracy instead of sinking into subnormals.
    /// </summary>
    private sealed class DeviceProducts : IProducts, IDisposable
    {
        private readonly Tensor _a;
        private readonly bool _ownsMatrix;
        private readonly double _scale;
        private Tensor? _x, _y;
        private float[] _staging = [];
        private int _p;

        /// <summary>Products with <paramref name="a"/> (Float32 [d, d], not owned), times <paramref name="scale"/>.</summary>
        public DeviceProducts(Tensor a, int d, double scale)
        {
            (_a, Dimension, _scale) = (a, d, scale);
        }

        /// <summary>Products with A, uploaded once to <paramref name="device"/> as Float32 A / s, s the power of two just above its largest entry.</summary>
        public DeviceProducts(double[] a, int d, Device device)
        {
            double largest = 0;
            foreach (double v in a) largest = Math.Max(largest, Math.Abs(v));
            _scale = Math.ScaleB(1, Math.ILogB(largest) + 1);
            var single = new float[a.Length];
            for (long i = 0; i < a.Length; i++) single[i] = (float)(a[i] / _scale);
            _a = Tensor.Empty(DType.Float32, [d, d], device);
            _ownsMatrix = true;
            Dimension = d;
            try { _a.CopyFrom<float>(single); }
            catch
            {
                _a.Dispose();
                throw;
            }
        }

        public int Dimension { get; }

        public double[][] Apply(double[][] block)
        {
            int p = block.Length, d = Dimension;
            if (p != _p)
            {
                _x?.Dispose();
                _y?.Dispose();
                (_x, _y, _p) = (null, null, 0);
                _x = Tensor.Empty(DType.Float32, [p, d], _a.Device);
                _y = Tensor.Empty(DType.Float32, [p, d], _a.Device);
                _staging = new float[p * d];
                _p = p;
            }
            var exponents = new int[p];
            for (int c = 0; c < p; c++)
            {
                double largest = 0;
                foreach (double v in block[c]) largest = Math.Max(largest, Math.Abs(v));
                exponents[c] = largest > 0 ? -Math.ILogB(largest) : 0;
                double up = Math.ScaleB(1, exponents[c]);
                for (int i = 0; i < d; i++) _staging[c * d + i] = (float)(block[c][i] * up);
            }
            _x!.CopyFrom<float>(_staging);
            Linalg.MatMul(_x, _a, c: _y);
            _y!.CopyTo<float>(_staging);
            var result = new double[p][];
            for (int c = 0; c < p; c++)
            {
                double down = Math.ScaleB(_scale, -exponents[c]);
                result[c] = new double[d];
                for (int i = 0; i < d; i++) result[c][i] = _staging[c * d + i] * down;
            }
            return result;
        }

        public void Dispose()
        {
            _x?.Dispose();
            _y?.Dispose();
            if (_ownsMatrix) _a.Dispose();
        }
    }
}
