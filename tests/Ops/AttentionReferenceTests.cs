using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// The reference itself: its forward on a scene small enough to work by hand, its backward against central finite
/// differences of its forward (so the backends' backward is held to the true gradient, not to a shared mistake), and one
/// sequence too long for any [N, M] matrix run on the CPU and held to it.
/// </summary>
public sealed class AttentionReferenceTests
{
    /// <summary>One query, two keys, D 1, scale 1: weights e^s / (e^1 + e^2), bottom-right causal alignment, and the mask rules.</summary>
    [Fact]
    public void A_scene_worked_by_hand()
    {
        var g = new AttentionReference.Geometry(1, 1, 1, 1, 2, 1, default, 1);
        (AttentionReference.Values output, AttentionReference.Values lse) = AttentionReference.Forward(g, [1], [1, 2], [10, 20]);
        double p0 = Math.E / (Math.E + Math.E * Math.E);
        Assert.Equal(10 * p0 + 20 * (1 - p0), output.Value[0], 12);
        Assert.Equal(Math.Log(Math.E + Math.E * Math.E), lse.Value[0], 12);
        // Two queries over three keys, causal: query 0 sits at position 1 (sees keys 0, 1), query 1 at 2 (sees all).
        var causal = new AttentionReference.Geometry(1, 1, 1, 2, 3, 1, new AttentionMask(true), 1);
        Assert.Equal((0, 1), causal.Visible(0));
        Assert.Equal((0, 2), causal.Visible(1));
        // Window 2: keys p - 1 and p; with N > M the first queries see nothing.
        var window = new AttentionReference.Geometry(1, 1, 1, 4, 2, 1, new AttentionMask(true, 2), 1);
        Assert.True(window.Visible(0).First > window.Visible(0).Last);
        Assert.Equal((0, 0), window.Visible(2));
        Assert.Equal((0, 1), window.Visible(3));
        (AttentionReference.Values empty, AttentionReference.Values emptyLse) = AttentionReference.Forward(window, [1, 1, 1, 1], [1, 2], [3, 4]);
        Assert.Equal(0, empty.Value[0]);
        Assert.Equal(double.NegativeInfinity, emptyLse.Value[1]);
        Assert.Equal(3, empty.Value[2]);
    }

    [Theory]
    [InlineData(1, 2, 1, 3, 5, 4, false, 0)]
    [InlineData(2, 4, 2, 5, 5, 3, true, 0)]
    [InlineData(1, 3, 1, 4, 7, 2, true, 3)]
    [InlineData(1, 2, 2, 6, 4, 5, false, 2)]
    public void The_backward_is_the_gradient_of_the_forward(int batch, int hq, int hkv, int n, int m, int d, bool causal, int window)
    {
        var g = new AttentionReference.Geometry(batch, hq, hkv, n, m, d, new AttentionMask(causal, window), 0.7);
        var random = new Random(n * m + d);
        double[] Draw(long count) => [.. Enumerable.Range(0, (int)count).Select(_ => random.NextDouble() * 2 - 1)];
        long qe = (long)batch * hq * n * d, ke = (long)batch * hkv * m * d;
        double[] q = Draw(qe), k = Draw(ke), v = Draw(ke), dO = Draw(qe);
        double Loss(double[] qq, double[] kk, double[] vv)
        {
            double[] o = AttentionReference.Forward(g, qq, kk, vv).Output.Value;
            return o.Select((x, i) => x * dO[i]).Sum();
        }
        double[] output = AttentionReference.Forward(g, q, k, v).Output.Value;
        (AttentionReference.Values dq, AttentionReference.Values dk, AttentionReference.Values dv) = AttentionReference.Backward(g, dO, q, k, v, output);
        const double h = 1e-4;
        foreach ((double[] x, double[] analytic, string name) in new[] { (q, dq.Value, "dq"), (k, dk.Value, "dk"), (v, dv.Value, "dv") })
        {
            double largest = Math.Max(1e-3, analytic.Max(Math.Abs));
            for (int e = 0; e < x.Length; e++)
            {
                double keep = x[e];
                x[e] = keep + h;
                double up = Loss(q, k, v);
                x[e] = keep - h;
                double down = Loss(q, k, v);
                x[e] = keep;
                double numeric = (up - down) / (2 * h);
                Assert.True(Math.Abs(numeric - analytic[e]) <= Tolerances.AttentionFiniteDifference * largest,
                    $"{name}[{e}]: analytic {analytic[e]:R}, finite difference {numeric:R}");
            }
        }
    }

    /// <summary>
    /// N = M = 2^17 with a window of 64: a [N, N] Float32 score matrix would be 64 GiB, more than this machine holds, so the
    /// CPU forward and backward finishing, and within the bound, shows their memory is linear in N (perf measures the RSS).
    /// </summary>
    [Fact]
    public void A_sequence_whose_score_matrix_would_not_fit_runs_in_linear_memory()
    {
        const int n = 1 << 17;
        Assert.True(4L * n * n > GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, "the score matrix would fit this machine's memory");
        CaseAssert.Passes(new AttentionCase(1, 1, 1, n, n, 8, true, 64, DType.Float32, false, 3), Device.Cpu);
        CaseAssert.Passes(new AttentionCase(1, 1, 1, n, n, 8, true, 64, DType.BFloat16, true, 4), Device.Cpu);
    }
}
