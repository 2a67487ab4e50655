using NativeTensor.Reference;
namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// The one table of allowed differences from the reference, by op, dtype and backend. Test bodies never hold a
/// tolerance literal; they ask here, and each entry says where its number comes from.
/// </summary>
public static class Tolerances
{
    /// <summary>Largest allowed |actual - expected| in units in the last place, or 0 for bit-exact.</summary>
    public static int Ulps(string op, DType dtype, DeviceKind backend) => (op, dtype, backend) switch
    {
        // Windows move bytes and never round, so every dtype on every backend must be bit-exact.
        ("windows", _, _) => 0,
        // Conversions are specified to the bit (round to nearest even, NaN rules), so every backend must match exactly.
        ("convert", _, _) => 0,
        _ => throw new ArgumentException($"no tolerance entry for ({op}, {dtype}, {backend}): add one with its source"),
    };

    /// <summary>
    /// The error of one binary32 operation, in ulps, that a backend's kernel for <paramref name="op"/> may make: the
    /// input of <see cref="StepErrorBound"/>, which derives each element's tolerance from it.
    /// </summary>
    public static (double Basic, double Sqrt, double Divide) OperationUlps(string op, DeviceKind backend) => (op, backend) switch
    {
        // IEEE 754 add, multiply, divide and sqrt are correctly rounded (half an ulp): .NET's scalar and vector float
        // operations, and CUDA's __fadd_rn/__fmul_rn/__fdiv_rn/__fsqrt_rn (the dialect's words, no --use_fast_math).
        ("adamw" or "sgd", DeviceKind.Cpu or DeviceKind.Cuda) => (0.5, 0.5, 0.5),
        // OpenCL 1.2 §7.4: add and multiply correctly rounded; x / y within 2.5 ulp and sqrt within 3 ulp unless the
        // program is built with -cl-fp32-correctly-rounded-divide-sqrt, which only some devices support.
        ("adamw" or "sgd", DeviceKind.OpenCl) => (0.5, 3, 2.5),
        // ILGPU: its emulated CPU runs the kernels as .NET code (IEEE, as the cpu row); on CUDA, without fast math (the
        // backend refuses a fast-math context), ILGPU emits div.rn.f32 and sqrt.rn.f32 with subnormals kept, and the
        // kernels' multiply and add words are inline mul.rn.f32/add.rn.f32, which ptxas may not contract (kernels/ilgpu/Dialect.cs).
        ("adamw" or "sgd", DeviceKind.Ilgpu) => (0.5, 0.5, 0.5),
        _ => throw new ArgumentException($"no per-operation accuracy for ({op}, {backend}): add one with its source"),
    };

    /// <summary>
    /// The relative error factor of <see cref="Moments"/>' scatter on <paramref name="backend"/>, for data of at most
    /// <paramref name="rows"/> rows in all: each entry's error is at most this times <c>sqrt(D_j D_k)</c> (D the sums of
    /// squares of the centred features; see <see cref="MomentsErrorBound"/>).
    /// </summary>
    /// <remarks>
    /// Source: the Float32 steps are the Syrk of a block of at most <see cref="Moments.ScatterBlockRows"/> rows and, on a
    /// device, the accumulation of a batch's blocks. A sum of b products in binary32, in any order, with or without FMA,
    /// is within γ_b = b u / (1 - b u) (u = 2^-24) of the exact sum of |products| (Higham, Accuracy and Stability of
    /// Numerical Algorithms, §3.1); Cauchy–Schwarz turns Σ|y_j y_k| into sqrt(D_j D_k) and carries the bound across blocks
    /// and batches. Two more roundings cover the centring subtraction of each factor: γ_130 in all. Every backend's Syrk
    /// accumulates in Float32 with correctly rounded add and multiply (OpenCL 1.2 §7.4, CUDA without fast math).
    /// On the CPU each block is added into double (64 u_double covers the double-precision steps). On OpenCL and CUDA the
    /// B = ceil(n / 128) blocks of a batch are added on the device into a (hi, lo) pair by TwoSum, the cascade of Ogita,
    /// Rump and Oishi's Sum2 ("Accurate sum and dot product", SIAM J. Sci. Comput. 26(6), 2005, Algorithm 4.4) without its
    /// final rounding, since hi + lo is formed in double: by their Proposition 4.5 (less the u |s| of that rounding) the
    /// pair is within γ_(B-1)² Σ_b |S_b| of the exact sum of the block results S_b, and Σ_b |S_b| &lt;= (1 + γ_130)
    /// sqrt(D_j D_k) by the same Cauchy–Schwarz. No batch has more than ceil(rows / 128) blocks, so
    /// f = γ_130 + (1 + γ_130) γ_B² + 64 u_double with B from <paramref name="rows"/>; at B = 16 the new term is 1e-12.
    /// </remarks>
    public static double MomentsScatterRelative(DeviceKind backend, long rows = Moments.ScatterBlockRows)
    {
        double u = SingleUnitRoundoff, block = Gamma(Moments.ScatterBlockRows + 2, u);
        return backend switch
        {
            DeviceKind.Cpu => block + 64 * DoubleUnitRoundoff,
            // ILGPU's kernels are the same Float32 Syrk and TwoSum cascade as OpenCL's and CUDA's, in C#.
            DeviceKind.OpenCl or DeviceKind.Cuda or DeviceKind.Ilgpu =>
                block + (1 + block) * Math.Pow(Gamma(Math.Max(1, (rows + Moments.ScatterBlockRows - 1) / Moments.ScatterBlockRows), u), 2)
                + 64 * DoubleUnitRoundoff,
            _ => throw new ArgumentException($"no moments tolerance for {backend}: add one with its source"),
        };
    }

    /// <summary>
    /// The error of <see cref="Moments.Mean"/> relative to the largest |x| of the feature, for <paramref name="rows"/> rows
    /// on <paramref name="backend"/>.
    /// </summary>
    /// <remarks>
    /// Source: on the CPU the batch mean is a double sum of floats, within (n - 1) u_double of Σ|x| (Higham §4.2), i.e.
    /// (n - 1) u max|x| after the division; each of at most n Chan merges adds about 9 u max|x| (δ is at most 2 max|x|);
    /// the two-pass reference makes its own (N - 1) u max|x|. (12 N + 16) u_double, u_double = 2^-53, covers all of them.
    /// On OpenCL and CUDA the batch's column sums are Float32 TwoSum cascades over chunks of m rows (Sum2 as in
    /// <see cref="MomentsScatterRelative"/>: within γ_(m-1)² Σ|x| of the exact chunk sum), whose (hi, lo) pairs, at most
    /// n of them, the host adds in double (2 n u_double more): (14 N + 16) u_double + γ_m², with m the longest chunk
    /// any batch of at most N rows gets (<see cref="Moments.ColumnSumRows"/>: 128 rows up to 8192 rows a batch).
    /// </remarks>
    public static double MomentsMeanRelative(long rows, DeviceKind backend = DeviceKind.Cpu) => backend switch
    {
        DeviceKind.Cpu => (12.0 * rows + 16) * DoubleUnitRoundoff,
        DeviceKind.OpenCl or DeviceKind.Cuda or DeviceKind.Ilgpu =>
            (14.0 * rows + 16) * DoubleUnitRoundoff + Math.Pow(Gamma(Math.Min(rows, Moments.ColumnSumRows(rows)), SingleUnitRoundoff), 2),
        _ => throw new ArgumentException($"no moments mean tolerance for {backend}: add one with its source"),
    };

    /// <summary>
    /// How many binary32 roundings R an attention result may carry, in units of <see cref="AttentionReference"/>'s
    /// magnitudes: every backend's element must be within <c>R u μ + T μ + w |value|</c> (u = 2^-24; T from
    /// <see cref="AttentionInputRounding"/>, w from <see cref="AttentionResultRounding"/>).
    /// </summary>
    /// <remarks>
    /// Source: the reference's μ is the first-order propagation of one relative error per step (see its remarks). The
    /// longest chain of binary32 roundings any result passes through is: D for a score's dot product; M for the sum over
    /// keys (the online softmax's rescales add one multiply per key tile, fewer than M); N x group for dk and dv, summed over
    /// the queries of every head in the group; and a constant 32 for the single operations and the exponentials (the CPU's
    /// vector exp is within 2 ulp, OpenCL 1.2 allows 3 ulp for exp and log, CUDA's expf/logf 2 and 1). Doubled, since
    /// first-order bounds omit the products of errors and the kernels' orders of summation differ from the reference's.
    /// </remarks>
    public static double AttentionRoundings(int headDim, int queries, int keys, int group) =>
        2.0 * (headDim + keys + (double)queries * group + 32);

    /// <summary>
    /// The relative error of rounding each attention weight (and, in the backward, each dS) to the input dtype before a
    /// product, which only CUDA's tensor-core path does for Float16 and BFloat16 (mma.sync takes 16-bit operands): the
    /// dtype's unit roundoff, 2^-11 for Float16 and 2^-8 for BFloat16; 0 where weights stay Float32.
    /// </summary>
    public static double AttentionInputRounding(DType dtype, DeviceKind backend) => (dtype, backend) switch
    {
        (DType.Float16, DeviceKind.Cuda) => Math.ScaleB(1.0, -11),
        (DType.BFloat16, DeviceKind.Cuda) => Math.ScaleB(1.0, -8),
        _ => 0,
    };

    /// <summary>
    /// The error of storing a Float32 result in <paramref name="dtype"/> by rounding to nearest even: relative, its unit
    /// roundoff (2^-11 for Float16, 2^-8 for BFloat16, 0 for Float32, which is stored as computed); absolute, half its
    /// smallest subnormal, for results in the subnormal range.
    /// </summary>
    public static (double Relative, double Absolute) AttentionResultRounding(DType dtype) => dtype switch
    {
        DType.Float16 => (Math.ScaleB(1.0, -11), Math.ScaleB(1.0, -25)),
        DType.BFloat16 => (Math.ScaleB(1.0, -8), Math.ScaleB(1.0, -134)),
        _ => (0, 0),
    };

    /// <summary>
    /// The absolute floor of an attention result's bound, for results at or near binary32's subnormal range, where a
    /// rounding's error is absolute (at most 2^-150, half the smallest subnormal) rather than relative to the value.
    /// </summary>
    /// <remarks>
    /// Source: each of the R roundings (<see cref="AttentionRoundings"/>) may lose 2^-150 in an intermediate (a weight, a
    /// product, dS), which later steps multiply by at most scale times D times a product of the inputs' magnitudes (at
    /// most one each of q, k, v and dO along any chain): R 2^-149 D max(1, scale) (1 + max|input|)^4. Below 1e-30 for
    /// every suite's inputs, so it only decides results that are themselves nearly subnormal.
    /// </remarks>
    public static double AttentionUnderflow(int headDim, int queries, int keys, int group, double scale, double largestInput) =>
        AttentionRoundings(headDim, queries, keys, group) * Math.ScaleB(1.0, -149) * headDim * Math.Max(1, scale) * Math.Pow(1 + largestInput, 4);

    /// <summary>
    /// How far the reference's analytic attention gradient may sit from a central finite difference of the reference's
    /// forward in double, relative to the largest gradient: the difference's truncation error is h^2/6 times a third
    /// derivative (h = 1e-4 on inputs of magnitude 1: about 1e-9) and its cancellation error 2^-53 / h times the loss
    /// (about 1e-12); 1e-6 leaves three orders to spare and still catches any wrong term, which would be of order 1.
    /// </summary>
    public const double AttentionFiniteDifference = 1e-6;

    /// <summary>
    /// The stability target: data with mean 1e4 and unit variance must give a covariance within this max-norm relative
    /// error (max |C - C_ref| / max |C_ref|) of the double two-pass reference. A requirement, not a derived bound; the derived
    /// bound <see cref="MomentsScatterRelative"/> (7.7e-6) is what guarantees it.
    /// </summary>
    public const double MomentsStability = 1e-5;

    /// <summary>
    /// The target for <see cref="Training.StreamingPca"/> eigenvalues of an exactly known matrix, relative. The solver's
    /// convergence test (residual below 64 sqrt(d) ε ‖A‖_F) bounds the error by residual² / gap, orders of magnitude below.
    /// </summary>
    public const double PcaEigenvalueRelative = 1e-9;

    /// <summary>The target for the angle between a recovered and a planted eigenvector, in radians.</summary>
    public const double PcaAngle = 1e-3;

    /// <summary>
    /// How far from the identity <c>V V^T</c> of StreamingPca's eigenvectors may be, entry by entry: Gram–Schmidt run twice
    /// and Jacobi rotations keep orthogonality to a small multiple of d ε (Higham §19.8, §8.4 for MGS with
    /// reorthogonalisation); 1e-12 is that with d up to ~200 and a factor of 20 to spare.
    /// </summary>
    public const double PcaOrthonormality = 1e-12;

    /// <summary>
    /// The residual bound ρ that <see cref="Training.StreamingPca.TopK(Tensor, int)"/> (Float32 products) guarantees for every
    /// returned pair of a Float32 matrix A with symmetric part S: <c>‖S v - λ v‖ ≤ ρ</c>, for a d×d matrix, a block of p
    /// vectors and <paramref name="frobenius"/> = ‖A‖_F.
    /// </summary>
    /// <remarks>
    /// Source: the solver stops when its computed residuals are below τ = 64 sqrt(d) u ‖A‖_F (u = 2^-24, its
    /// SingleResidualFactor). The true residual differs from the computed one by (1) A (Q - fl(Q)) w: the orthonormal block
    /// Q is rounded to Float32 on upload (each entry within u, exactly scaled by powers of two), ‖Q - fl(Q)‖_2 ≤ u ‖Q‖_F =
    /// u sqrt(p), and ‖w‖ = 1, so at most u sqrt(p) ‖A‖_2; (2) (fl(fl(Q) A) - fl(Q) A) w: the Float32 product over d terms,
    /// entrywise within γ_(d+2) |fl(Q)| |A| (<see cref="MatMulError"/>'s model, Higham §3.1), whose 2-norm is at most
    /// γ_(d+2) ‖|fl(Q)|‖_F ‖|A|‖_2 ≤ γ_(d+2) (1 + u) sqrt(p) ‖A‖_F; (3) the asymmetric part (A - A^T)/2, whose 2-norm the
    /// solver's symmetry rule keeps below τ / 8; (4) the host's double arithmetic: the Ritz vector and image are sums of p
    /// scaled vectors and the residual one subtraction further, within (p + 1) γ_(p+2) ‖A‖_F in double; and (5) this test's
    /// own evaluation of ‖S v - λ v‖ in double, within γ_(d+2) ‖A‖_F. Underflow (see <see cref="MatMulError"/>) adds at most
    /// (d + 2) 2^-149 per entry of the d×p product, sqrt(p d) (d + 2) 2^-149 in norm.
    /// </remarks>
    public static double PcaSingleResidual(int d, int p, double frobenius)
    {
        double u = SingleUnitRoundoff, ud = DoubleUnitRoundoff;
        double relative = 9.0 / 8 * NativeTensor.Training.StreamingPca.SingleResidualFactor * Math.Sqrt(d) * u
            + Math.Sqrt(p) * (u + Gamma((long)d + 2, u) * (1 + u))
            + (p + 1) * Gamma((long)p + 2, ud) + Gamma((long)d + 2, ud);
        return relative * frobenius + Math.Sqrt((double)p * d) * (d + 2) * Math.ScaleB(1.0, -149);
    }

    /// <summary>
    /// The residual bound of StreamingPca's double path (the <see cref="Moments"/> overloads included, refined or not):
    /// <c>‖A v - λ v‖ ≤ ρ</c> for every returned pair of the exactly symmetric double matrix A, ‖A‖_F = <paramref name="frobenius"/>.
    /// </summary>
    /// <remarks>
    /// Source: the convergence test, computed residuals below 64 sqrt(d) ε ‖A‖_F (ε = 2^-52), plus what separates a computed
    /// residual from the true one: the double product A Q over d terms (γ_(d+2) sqrt(p) ‖A‖_F, as in
    /// <see cref="PcaSingleResidual"/>), the host's sums of p vectors ((p + 1) γ_(p+2) ‖A‖_F), and this test's own evaluation
    /// (γ_(d+2) ‖A‖_F), all with u = 2^-53.
    /// </remarks>
    public static double PcaDoubleResidual(int d, int p, double frobenius)
    {
        double ud = DoubleUnitRoundoff;
        return (64 * Math.Sqrt(d) * 2 * ud + Math.Sqrt(p) * Gamma((long)d + 2, ud) + (p + 1) * Gamma((long)p + 2, ud) + Gamma((long)d + 2, ud)) * frobenius;
    }

    /// <summary>
    /// The largest angle, in radians, between a unit vector v with <c>‖A v - λ v‖ ≤ <paramref name="residual"/></c> and the
    /// eigenvector (or the span of a cluster of eigenvectors) it approximates, when every other eigenvalue is at least
    /// <paramref name="gap"/> from the one (or the cluster's) it belongs to.
    /// </summary>
    /// <remarks>
    /// Source: the Davis–Kahan sin θ theorem in its residual form (Parlett, The Symmetric Eigenvalue Problem, Theorem 11.7.1;
    /// Davis and Kahan 1970): sin θ ≤ ‖r‖ / δ, δ the distance from λ to the eigenvalues outside the wanted ones. λ itself is
    /// within ‖r‖ of a wanted eigenvalue, so δ ≥ gap - ‖r‖. With no gap left (‖r‖ ≥ gap / 2) nothing is promised: π / 2.
    /// </remarks>
    public static double PcaAngleBound(double residual, double gap) =>
        residual >= gap / 2 ? Math.PI / 2 : Math.Asin(residual / (gap - residual));

    private static double Gamma(int n, double u) => n * u / (1 - n * u);
    /// <summary>
    /// How far a resident-set figure (VmRSS, VmHWM, a <see cref="NativeTensor.Memory.MemoryMeasurement"/> peak) may sit
    /// from the bytes a test touched, on this machine: <c>max(32, 2 n) x n</c> pages for n online CPUs, plus 6 MiB.
    /// </summary>
    /// <remarks>
    /// Source: Linux keeps each mm's resident counts in per-CPU counters and folds a CPU's share into the total only
    /// when it passes the batch, <c>percpu_counter_batch = max(32, 2 x online CPUs)</c> pages (lib/percpu_counter.c);
    /// a read of VmRSS or VmHWM can therefore miss up to one batch per CPU. With n = 2 that is 32 x 2 pages = 256 KiB at
    /// 4 KiB pages; with n = 16 it is 2 MiB; with n = 64, 32 MiB. The 6 MiB is the runtime's own allocation during a
    /// measured block (JIT of the lambda, GC bookkeeping, thread stacks): we measured under 1 MiB and allow six times
    /// that. Against the 256 MiB blocks the tests touch this stays under 3% up to 16 CPUs.
    /// </remarks>
    public static long ResidentSetSlackBytes
    {
        get
        {
            long cpus = OnlineCpus();
            return Math.Max(32, 2 * cpus) * cpus * Environment.SystemPageSize + RuntimeAllocationSlackBytes;
        }
    }

    /// <summary>The kernel's online CPUs (/sys/devices/system/cpu/online, e.g. <c>0-3,8</c>): not ProcessorCount, which a container's CPU quota lowers.</summary>
    private static long OnlineCpus()
    {
        const string online = "/sys/devices/system/cpu/online";
        if (!File.Exists(online)) return Environment.ProcessorCount;
        long count = 0;
        foreach (string range in File.ReadAllText(online).Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] ends = range.Split('-');
            count += ends.Length == 1 ? 1 : long.Parse(ends[1], System.Globalization.CultureInfo.InvariantCulture) - long.Parse(ends[0], System.Globalization.CultureInfo.InvariantCulture) + 1;
        }
        return Math.Max(count, Environment.ProcessorCount);
    }

    /// <summary>The runtime's own allocation during a measured block, the fixed part of <see cref="ResidentSetSlackBytes"/>.</summary>
    public const long RuntimeAllocationSlackBytes = 6L << 20;

    /// <summary>
    /// How far the host's MemAvailable may move between two readings of /proc/meminfo a few milliseconds apart, taken
    /// around a reading under test: other processes on the host allocate and free meanwhile. 64 MiB is a build or a
    /// test process starting on a shared machine; a parser that read the wrong line or the wrong unit misses by far more.
    /// </summary>
    public const long HostAvailableDriftBytes = 64L << 20;

    /// <summary>The unit roundoff of binary32 (round to nearest): half an ulp of 1.</summary>
    public const double SingleUnitRoundoff = 1.0 / (1 << 24);

    /// <summary>The unit roundoff of binary64, which the double reference rounds with.</summary>
    public const double DoubleUnitRoundoff = 1.0 / (1L << 53);

    /// <summary>Higham's γ_n = n u / (1 - n u): the relative error n roundings of unit roundoff u can build up (n u &lt; 1).</summary>
    public static double Gamma(long n, double u) => n * u / (1 - n * u);

    /// <summary>
    /// The largest |computed - reference| allowed for one element of a Float32 matrix product,
    /// <c>alpha * Σ_p a_ip b_pj + beta * c</c> over <paramref name="k"/> terms (MatMul and Syrk, on every backend):
    /// <c>γ_{k+2} (|alpha| Σ_p |a_ip b_pj| + |beta c|)</c> in binary32, plus the same in binary64 for the reference's own
    /// rounding, plus <c>(k + 2) 2^-149</c> for underflow.
    /// </summary>
    /// <remarks>
    /// Source: Higham, <i>Accuracy and Stability of Numerical Algorithms</i>, 2nd ed. (SIAM, 2002), §3.1: an inner product
    /// evaluated in any order, with any parenthesisation and with or without fused multiply-adds, satisfies <c>|fl(x^T y) -
    /// x^T y| &lt;= γ_k |x|^T |y|</c>, because each term passes through at most k roundings and Lemma 3.1 bounds a product
    /// of k factors (1 + δ), |δ| &lt;= u, by 1 + θ_k with |θ_k| &lt;= γ_k. Scaling by alpha and adding beta * c are at most
    /// two more roundings on every term, hence γ_{k+2}; a kernel that splits k into blocks and merges them into C one block
    /// at a time (the CPU GEMM) still rounds each term at most k + 2 times. The model assumes no underflow; with gradual
    /// underflow each of those roundings may add at most half the smallest subnormal, 2^-150, absolutely (Higham §2.1),
    /// which the later relative roundings can at most double. With beta 0 the old C does not enter (it may be NaN).
    /// </remarks>
    public static double MatMulError(long k, double alpha, double absoluteProducts, double beta, double oldC)
    {
        double magnitude = Math.Abs(alpha) * absoluteProducts + (beta == 0 ? 0 : Math.Abs(beta * oldC));
        return (Gamma(k + 2, SingleUnitRoundoff) + Gamma(k + 2, DoubleUnitRoundoff)) * magnitude + (k + 2) * Math.ScaleB(1.0, -149);
    }

    /// <summary>
    /// The absolute error of one unnormalised weight that <see cref="AttentionInputRounding"/>'s relative term misses: on
    /// CUDA's tensor-core path a Float16 weight below 2^-14 is subnormal and rounds to a multiple of 2^-24, off by up to
    /// 2^-25. After the division by l_i &gt;= 1 an output moves by at most <c>2^-25 Σ_j |v_jd|</c> over the keys query i
    /// sees (for dq likewise with the operand the weight multiplies, and for dk and dv over the N x group queries that see
    /// the key, a subnormal dS or P each). 0 elsewhere: BFloat16 has binary32's
    /// exponent range, and other backends keep weights in binary32.
    /// </summary>
    public static double AttentionInputRoundingFloor(DType dtype, DeviceKind backend) =>
        (dtype, backend) == (DType.Float16, DeviceKind.Cuda) ? Math.ScaleB(1.0, -25) : 0;
}
