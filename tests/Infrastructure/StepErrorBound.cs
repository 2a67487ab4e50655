namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// A running forward error analysis of a binary32 computation: each <see cref="Bounded"/> carries the exact value (in
/// double) of a quantity the kernel computes in binary32 and a bound on how far the kernel's value can be from it,
/// propagated through every operation the kernel performs and grown by that operation's own rounding. The optimizer
/// tests derive their tolerance from this instead of picking one: the bound follows the kernel's documented operation
/// sequence (<c>kernels/optimizer_steps.cl</c>) and each backend's per-operation accuracy (<see cref="Tolerances.OperationUlps"/>).
/// </summary>
/// <remarks>
/// One operation with an error of k ulps is within k * 2^-23 of its result relative (an ulp of a normal binary32 x is
/// at most 2^-23 |x|), plus k * 2^-149 absolute for results in the subnormal range. An FMA where the kernel shows a
/// multiply and an add rounds once instead of twice, so the bound still holds if a compiler contracts.
/// </remarks>
public sealed class StepErrorBound((double Basic, double Sqrt, double Divide) ulps)
{
    private const double Ulp = 1.0 / (1 << 23);
    private const double SmallestSubnormal = 1.401298464324817e-45;

    /// <summary>An exactly known input (a widened gradient, a float scale, a float state value).</summary>
    public static Bounded Exactly(double value) => new(value, 0);

    /// <summary>A constant derived in double and rounded once to binary32 on the host: within half an ulp.</summary>
    public static Bounded HostRounded(double value) => new(value, 0.5 * Ulp * Math.Abs(value) + SmallestSubnormal);

    /// <summary>The rounding of one operation with an error of <paramref name="k"/> ulps on a result of at most <paramref name="magnitude"/>.</summary>
    private static double Rounding(double k, double magnitude) => k * (Ulp * magnitude + SmallestSubnormal);

    public Bounded Multiply(Bounded a, Bounded b)
    {
        double exact = a.Exact * b.Exact;
        double propagated = Math.Abs(a.Exact) * b.Error + Math.Abs(b.Exact) * a.Error + a.Error * b.Error;
        return new(exact, propagated + Rounding(ulps.Basic, Math.Abs(exact) + propagated));
    }

    public Bounded Add(Bounded a, Bounded b)
    {
        double exact = a.Exact + b.Exact;
        double propagated = a.Error + b.Error;
        return new(exact, propagated + Rounding(ulps.Basic, Math.Abs(exact) + propagated));
    }

    public Bounded Subtract(Bounded a, Bounded b) => Add(a, new Bounded(-b.Exact, b.Error));

    /// <summary>sqrt of a non-negative quantity: |sqrt(x') - sqrt(x)| is at most sqrt(e) and at most e / sqrt(x).</summary>
    public Bounded Sqrt(Bounded a)
    {
        double exact = Math.Sqrt(a.Exact);
        double propagated = a.Error == 0 ? 0 : exact > 0 ? Math.Min(Math.Sqrt(a.Error), a.Error / exact) : Math.Sqrt(a.Error);
        return new(exact, propagated + Rounding(ulps.Sqrt, exact + propagated));
    }

    /// <summary>a / b for a denominator bounded away from 0 (|b| &gt; its error); otherwise the bound is infinite.</summary>
    public Bounded Divide(Bounded a, Bounded b)
    {
        double exact = a.Exact / b.Exact;
        double margin = Math.Abs(b.Exact) - b.Error;
        if (!(margin > 0)) return new(exact, double.PositiveInfinity);
        double propagated = (a.Error * Math.Abs(b.Exact) + Math.Abs(a.Exact) * b.Error) / (Math.Abs(b.Exact) * margin);
        return new(exact, propagated + Rounding(ulps.Divide, Math.Abs(exact) + propagated));
    }

    /// <summary>One AdamW step of one element, in the kernel's order (AdamWConstants), from bounded state.</summary>
    public (Bounded P, Bounded M, Bounded V) AdamW(Bounded p, Bounded m, Bounded v, double gradient, float inverseScale, AdamWOptions o, long step)
    {
        Bounded g = Multiply(Exactly(gradient), Exactly(inverseScale));
        m = Add(Multiply(HostRounded(o.Beta1), m), Multiply(HostRounded(1 - o.Beta1), g));
        v = Add(Multiply(HostRounded(o.Beta2), v), Multiply(HostRounded(1 - o.Beta2), Multiply(g, g)));
        Bounded denominator = Add(Multiply(Sqrt(v), HostRounded(1 / Math.Sqrt(1 - Math.Pow(o.Beta2, step)))), HostRounded(o.Epsilon));
        Bounded stepSize = HostRounded(o.LearningRate / (1 - Math.Pow(o.Beta1, step)));
        p = Subtract(Multiply(p, HostRounded(1 - o.LearningRate * o.WeightDecay)), Multiply(stepSize, Divide(m, denominator)));
        return (p, m, v);
    }

    /// <summary>One SGD-with-momentum step of one element, in the kernel's order (SgdConstants).</summary>
    public (Bounded P, Bounded B) Sgd(Bounded p, Bounded b, double gradient, float inverseScale, SgdOptions o, bool first)
    {
        Bounded g = Multiply(Exactly(gradient), Exactly(inverseScale));
        if (o.WeightDecay != 0) g = Add(g, Multiply(HostRounded(o.WeightDecay), p));
        b = first ? g : Add(Multiply(HostRounded(o.Momentum), b), Multiply(HostRounded(1 - o.Dampening), g));
        Bounded update = o.Nesterov ? Add(g, Multiply(HostRounded(o.Momentum), b)) : b;
        p = Subtract(p, Multiply(HostRounded(o.LearningRate), update));
        return (p, b);
    }
}

/// <summary>The exact value of a binary32 quantity and a bound on the binary32 computation's distance from it.</summary>
public readonly record struct Bounded(double Exact, double Error);
