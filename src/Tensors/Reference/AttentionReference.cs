namespace NativeTensor.Reference;

/// <summary>
/// The specification of <see cref="Attention"/> as plain loops in double over the inputs' exact values (16-bit inputs
/// widen exactly): the full score row of each query, its softmax, and the gradients by the chain rule, with every
/// index as <see cref="Attention"/>'s docs state it (bottom-right aligned queries, the mask, grouped heads).
/// </summary>
/// <remarks>
/// Beside each value the reference returns a magnitude μ: the same computation with every term replaced by its absolute
/// value and the softmax's sensitivity to its scores folded in (first order). A backend that rounds each of its at most R
/// binary32 steps to nearest is within about R u μ of the value (u = 2^-24), which is how the tests derive each
/// element's tolerance instead of picking one (see <c>Tolerances.AttentionRoundings</c>). With A_i the largest
/// <c>scale Σ_d |q_id k_jd|</c> over the keys query i sees, a score's rounding error is within D u A_i, and a relative
/// error e in every weight moves a normalised sum by at most 2e times its absolute sum:
/// <list type="bullet">
/// <item>output: μ = (1 + 2 A_i) Σ_j P_ij |v_jd|; log-sum-exp: μ = 1 + A_i + |L_i|;</item>
/// <item>P's relative error ε_i = 1 + 2 A_i + |L_i| (scores, L, and their difference);</item>
/// <item>dS_ij = P_ij (dP_ij - Δ_i): σ_ij = ε_i P_ij |dP_ij - Δ_i| + P_ij (Σ_d |dO_id v_jd| + Σ_d |dO_id O_id| + |dP_ij - Δ_i|);</item>
/// <item>dq: μ = scale Σ_j (σ_ij + |dS_ij|) |k_jd|; dk: μ = scale Σ_i (σ_ij + |dS_ij|) |q_id|; dv: μ = Σ_i P_ij (1 + ε_i) |dO_id|.</item>
/// </list>
/// </remarks>
public static class AttentionReference
{
    /// <summary>The geometry of a call, as <see cref="Attention"/> reads its tensors: q [B, Hq, N, D], k and v [B, Hkv, M, D].</summary>
    public readonly record struct Geometry(int Batch, int QueryHeads, int KvHeads, int Queries, int Keys, int HeadDim, AttentionMask Mask, double Scale)
    {
        /// <summary>Query heads per key/value head.</summary>
        public int Group => QueryHeads / KvHeads;

        /// <summary>The keys query i sees, [first, last]; empty when first &gt; last.</summary>
        public (int First, int Last) Visible(int i)
        {
            long p = (long)Keys - Queries + i;
            long first = Mask.Window > 0 ? Math.Max(0, p - Mask.Window + 1) : 0;
            long last = Mask.Causal ? Math.Min(Keys - 1L, p) : Keys - 1L;
            return ((int)Math.Min(first, int.MaxValue), (int)Math.Max(last, -1));
        }

        /// <summary>The offset of q[b, h, i, 0] (also of the output and dO).</summary>
        public long Q(int b, int h, int i) => (((long)b * QueryHeads + h) * Queries + i) * HeadDim;

        /// <summary>The offset of k[b, g, j, 0] (also of v).</summary>
        public long K(int b, int g, int j) => (((long)b * KvHeads + g) * Keys + j) * HeadDim;

        /// <summary>The offset of logSumExp[b, h, i].</summary>
        public long Row(int b, int h, int i) => ((long)b * QueryHeads + h) * Queries + i;
    }

    /// <summary>Values with their magnitudes (see the remarks).</summary>
    public readonly record struct Values(double[] Value, double[] Magnitude);

    /// <summary>The forward: output [B, Hq, N, D] and log-sum-exp [B, Hq, N] (-inf for a query that sees no key).</summary>
    public static (Values Output, Values LogSumExp) Forward(Geometry g, double[] q, double[] k, double[] v)
    {
        var output = new Values(new double[(long)g.Batch * g.QueryHeads * g.Queries * g.HeadDim], new double[(long)g.Batch * g.QueryHeads * g.Queries * g.HeadDim]);
        var lse = new Values(new double[(long)g.Batch * g.QueryHeads * g.Queries], new double[(long)g.Batch * g.QueryHeads * g.Queries]);
        ForEachRow(g, q, k, (b, h, i, row) =>
        {
            long r = g.Row(b, h, i), o = g.Q(b, h, i);
            if (row.P.Length == 0)
            {
                lse.Value[r] = double.NegativeInfinity;
                return;
            }
            lse.Value[r] = row.L;
            lse.Magnitude[r] = 1 + row.A + Math.Abs(row.L);
            for (int t = 0; t < row.P.Length; t++)
            {
                long kv = g.K(b, h / g.Group, row.First + t);
                for (int d = 0; d < g.HeadDim; d++)
                {
                    output.Value[o + d] += row.P[t] * v[kv + d];
                    output.Magnitude[o + d] += row.P[t] * Math.Abs(v[kv + d]) * (1 + 2 * row.A);
                }
            }
        });
        return (output, lse);
    }

    /// <summary>The backward: dq [B, Hq, N, D], dk and dv [B, Hkv, M, D], from dO and the forward's exact output.</summary>
    public static (Values Dq, Values Dk, Values Dv) Backward(Geometry g, double[] dO, double[] q, double[] k, double[] v, double[] o)
    {
        long queryElements = (long)g.Batch * g.QueryHeads * g.Queries * g.HeadDim, keyElements = (long)g.Batch * g.KvHeads * g.Keys * g.HeadDim;
        var dq = new Values(new double[queryElements], new double[queryElements]);
        var dk = new Values(new double[keyElements], new double[keyElements]);
        var dv = new Values(new double[keyElements], new double[keyElements]);
        ForEachRow(g, q, k, (b, h, i, row) =>
        {
            long qi = g.Q(b, h, i);
            double delta = 0, deltaAbs = 0;
            for (int d = 0; d < g.HeadDim; d++)
            {
                delta += dO[qi + d] * o[qi + d];
                deltaAbs += Math.Abs(dO[qi + d] * o[qi + d]);
            }
            double epsilon = 1 + 2 * row.A + Math.Abs(row.L);
            for (int t = 0; t < row.P.Length; t++)
            {
                long kj = g.K(b, h / g.Group, row.First + t);
                double dp = 0, dpAbs = 0;
                for (int d = 0; d < g.HeadDim; d++)
                {
                    dp += dO[qi + d] * v[kj + d];
                    dpAbs += Math.Abs(dO[qi + d] * v[kj + d]);
                }
                double p = row.P[t], ds = p * (dp - delta);
                double sigma = epsilon * p * Math.Abs(dp - delta) + p * (dpAbs + deltaAbs + Math.Abs(dp - delta));
                for (int d = 0; d < g.HeadDim; d++)
                {
                    dq.Value[qi + d] += g.Scale * ds * k[kj + d];
                    dq.Magnitude[qi + d] += g.Scale * (sigma + Math.Abs(ds)) * Math.Abs(k[kj + d]);
                    dk.Value[kj + d] += g.Scale * ds * q[qi + d];
                    dk.Magnitude[kj + d] += g.Scale * (sigma + Math.Abs(ds)) * Math.Abs(q[qi + d]);
                    dv.Value[kj + d] += p * dO[qi + d];
                    dv.Magnitude[kj + d] += p * (1 + epsilon) * Math.Abs(dO[qi + d]);
                }
            }
        });
        return (dq, dk, dv);
    }

    /// <summary>One query's visible keys: the first, the softmax weights, the log-sum-exp and A (see the remarks).</summary>
    private readonly record struct Row(int First, double[] P, double L, double A);

    private static void ForEachRow(Geometry g, double[] q, double[] k, Action<int, int, int, Row> body)
    {
        if (g.QueryHeads % g.KvHeads != 0) throw new ArgumentException("QueryHeads must be a multiple of KvHeads", nameof(g));
        for (int b = 0; b < g.Batch; b++)
            for (int h = 0; h < g.QueryHeads; h++)
                for (int i = 0; i < g.Queries; i++)
                {
                    (int first, int last) = g.Visible(i);
                    int count = Math.Max(0, last - first + 1);
                    var scores = new double[count];
                    double max = double.NegativeInfinity, a = 0;
                    long qi = g.Q(b, h, i);
                    for (int t = 0; t < count; t++)
                    {
                        long kj = g.K(b, h / g.Group, first + t);
                        double s = 0, absolute = 0;
                        for (int d = 0; d < g.HeadDim; d++)
                        {
                            s += q[qi + d] * k[kj + d];
                            absolute += Math.Abs(q[qi + d] * k[kj + d]);
                        }
                        scores[t] = g.Scale * s;
                        a = Math.Max(a, g.Scale * absolute);
                        max = Math.Max(max, scores[t]);
                    }
                    double sum = 0;
                    for (int t = 0; t < count; t++) sum += Math.Exp(scores[t] - max);
                    double l = max + Math.Log(sum);
                    var p = new double[count];
                    for (int t = 0; t < count; t++) p[t] = Math.Exp(scores[t] - l);
                    body(b, h, i, new Row(first, p, count == 0 ? double.NegativeInfinity : l, a));
                }
    }
}
