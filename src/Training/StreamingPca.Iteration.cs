namespace NativeTensor.Training;

public static partial class StreamingPca
{
    /// <summary>
    /// The one thing subspace iteration needs of A: its product with a block of vectors. The host computes it in double
    /// (<see cref="HostProducts"/>), a device in Float32 (<see cref="DeviceProducts"/>); everything around it is the same.
    /// </summary>
    private interface IProducts
    {
        int Dimension { get; }

        /// <summary><c>A x</c> for each vector x of the block.</summary>
        double[][] Apply(double[][] block);
    }

    /// <summary>The Ritz pairs of the last projection, all p of them (values descending), and whether the first k converged.</summary>
    private readonly record struct RitzPairs(double[] Values, double[][] Vectors, bool Converged);

    /// <summary>
    /// Filtered subspace iteration from <paramref name="block"/> (orthonormalised here) until the first k Ritz pairs'
    /// residuals <c>‖A v - θ v‖</c>, computed from <paramref name="project"/>'s products, are at most
    /// <paramref name="tolerance"/>. The filter's products come from <paramref name="filter"/>: they only build the
    /// correction added to each Ritz vector (see <see cref="Filter"/>), so Float32 products there slow nothing down while
    /// the residuals come from double ones. Every <see cref="IterationsPerBlock"/> iterations the block doubles, and once it
    /// would reach d the pairs come back unconverged (the caller then runs Jacobi on A). With <paramref name="toFloor"/>
    /// (Float32 products throughout) it goes on past the tolerance while an iteration still halves the worst residual, to
    /// the accuracy Float32 allows; with <paramref name="seed"/> it gives its block back after
    /// <see cref="IterationsPerBlock"/> iterations instead of growing it.
    /// </summary>
    private static RitzPairs Iterate(IProducts project, IProducts filter, int k, double[][] block, double lower, double tolerance,
        SplitMix64 random, bool toFloor, bool seed = false)
    {
        int d = project.Dimension;
        Orthonormalise(block, random);
        double best = double.PositiveInfinity;
        for (int iteration = 1; ; iteration++)
        {
            // Rayleigh–Ritz: H = Q^T A Q, H = W Θ W^T, Ritz vectors V = Q W with A V = Z W, residuals R = A V - V Θ.
            int p = block.Length;
            double[][] products = project.Apply(block);
            var projected = new double[p * p];
            for (int r = 0; r < p; r++)
                for (int c = r; c < p; c++)
                    projected[r * p + c] = projected[c * p + r] = (Dot(block[r], products[c]) + Dot(block[c], products[r])) / 2;
            (double[] theta, double[][] w) = Jacobi(projected, p);
            double[][] ritz = Combine(block, w, d), residuals = Combine(products, w, d);
            double worst = 0;
            for (int i = 0; i < p; i++)
            {
                Axpy(-theta[i], ritz[i], residuals[i]);
                if (i < k) worst = Math.Max(worst, Math.Sqrt(Dot(residuals[i], residuals[i])));
            }
            if (worst <= tolerance && !(toFloor && worst < best / 2)) return new(theta, ritz, true);
            best = Math.Min(best, worst);
            if (iteration % IterationsPerBlock == 0)
            {
                if (seed || worst <= tolerance) return new(theta, ritz, worst <= tolerance);
                // No gap after the block to converge against (a dense cluster around the k-th value): more vectors, keeping
                // the Ritz vectors found so far; at p = d the projection is A itself and Jacobi finishes the job.
                p = Math.Min(d, 2 * p);
                if (p == d) return new(theta, ritz, false);
                block = [.. ritz, .. Enumerable.Range(0, p - ritz.Length).Select(_ => Random(d, random))];
            }
            else block = Filter(filter, ritz, residuals, theta, lower, toFloor ? FilterDegree : Degree(theta, k, lower, worst / tolerance));
            Orthonormalise(block, random);
        }
    }

    /// <summary>
    /// Each Ritz vector v_i (with residual r_i = A v_i - θ_i v_i) filtered by the Chebyshev polynomial of degree m on
    /// [lo, θ_p], normalised at its own Ritz value: <c>T_m(L) v_i / T_m(ℓ_i)</c> with <c>L = (A - c I) / e</c> mapping
    /// [lo, θ_p] onto [-1, 1] and ℓ_i = (θ_i - c) / e &gt;= 1. It is computed as <c>v_i + E_i</c>: since A v_i = θ_i v_i + r_i,
    /// the scaled three-term recurrence of Zhou and Saad (2007, Algorithm 3.2), with σ's per vector, leaves v_i unchanged
    /// and builds E_i from r_i alone:
    /// <code>E_0 = 0, E_1 = (σ_1 / e) r, E_(j+1) = (2 σ_(j+1) / e) ((A - c I) E_j + r) - σ_j σ_(j+1) E_(j-1)</code>
    /// So m - 1 products (the first one is A V, known), and they act on the correction only: with Float32 products, E is
    /// accurate to Float32 relative to its own size, which is that of r, and v_i + E_i gains Float32's accuracy over what
    /// v_i had, iteration after iteration, as long as r is computed in double (classic mixed-precision refinement).
    /// When the interval is empty (θ_p &lt;= lo), one step of <c>A - lo I</c>.
    /// </summary>
    private static double[][] Filter(IProducts a, double[][] v, double[][] r, double[] theta, double lo, int degree)
    {
        int p = v.Length, d = a.Dimension;
        double hi = theta[^1];
        var result = new double[p][];
        if (!(hi > lo))
        {
            for (int i = 0; i < p; i++)
            {
                result[i] = (double[])r[i].Clone();
                Axpy(theta[i] - lo, v[i], result[i]);
            }
            return result;
        }
        double e = (hi - lo) / 2, centre = (hi + lo) / 2;
        var sigma1 = new double[p];
        var sigma = new double[p];
        var previous = new double[p][];
        var current = new double[p][];
        for (int i = 0; i < p; i++)
        {
            sigma1[i] = sigma[i] = e / (theta[i] - centre);
            previous[i] = new double[d];
            current[i] = new double[d];
            Axpy(sigma1[i] / e, r[i], current[i]);
        }
        for (int m = 2; m <= degree; m++)
        {
            double[][] following = a.Apply(current);
            for (int i = 0; i < p; i++)
            {
                double next = 1 / (2 / sigma1[i] - sigma[i]), scale = 2 * next / e, back = sigma[i] * next;
                double[] f = following[i], c = current[i], b = previous[i], ri = r[i];
                for (int j = 0; j < d; j++) f[j] = (f[j] - centre * c[j] + ri[j]) * scale - back * b[j];
                sigma[i] = next;
            }
            (previous, current) = (current, following);
        }
        for (int i = 0; i < p; i++)
        {
            result[i] = (double[])v[i].Clone();
            Axpy(1, current[i], result[i]);
        }
        return result;
    }

    /// <summary>
    /// The lowest filter degree m (at most <see cref="FilterDegree"/>) whose amplification of the k-th Ritz value over the
    /// damped interval [lo, θ_p], <c>T_m(ξ)</c>, reaches 100 times the factor the residual still has to fall. The residual
    /// of a Ritz pair comes from components outside the block, which the filter damps by that factor relative to it, so
    /// near convergence a lower degree does the job with fewer products; the convergence test is unchanged by the choice.
    /// </summary>
    private static int Degree(double[] theta, int k, double lower, double shortfall)
    {
        double hi = theta[^1], e = (hi - lower) / 2, xi = (theta[k - 1] - (hi + lower) / 2) / e;
        if (!(e > 0) || !(xi > 1)) return FilterDegree;
        for (int m = 1; m < FilterDegree; m++)
            if (Math.Cosh(m * Math.Acosh(xi)) >= 100 * shortfall) return m;
        return FilterDegree;
    }

    /// <summary>
    /// Two proven lower bounds on the smallest eigenvalue of the symmetric row-major <paramref name="a"/>, the larger kept:
    /// |λ| &lt;= ‖A‖_2 &lt;= ‖A‖_F, and Gershgorin's discs, min_i (a_ii - Σ_j≠i |a_ij|).
    /// </summary>
    private static double LowerBound(double[] a, int d, double frobenius)
    {
        double gershgorin = double.PositiveInfinity;
        for (int i = 0; i < d; i++)
        {
            double radius = 0;
            for (int j = 0; j < d; j++)
                if (j != i) radius += Math.Abs(a[(long)i * d + j]);
            gershgorin = Math.Min(gershgorin, a[(long)i * d + i] - radius);
        }
        return Math.Max(gershgorin, -frobenius);
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

    /// <summary>The products in double on the host: A row-major d×d, exactly symmetric.</summary>
    private sealed class HostProducts(double[] a, int d) : IProducts
    {
        public int Dimension => d;

        public double[][] Apply(double[][] block) => Multiply(a, d, block);
    }
}
