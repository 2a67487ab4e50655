namespace NativeTensor.Reference;

/// <summary>
/// The specification of <see cref="OptimizerSteps"/> as plain math in double: the formulas of <see cref="AdamWOptions"/>
/// and <see cref="SgdOptions"/> applied to exact values, with the hyperparameters as the user gave them (no float
/// constants, no fixed operation order). Backends compute in binary32; the tests bound the distance between the two
/// by a running error analysis of the binary32 sequence, not by a tolerance picked by eye.
/// </summary>
public static class OptimizerStepsReference
{
    /// <summary>
    /// One AdamW step <paramref name="step"/> (from 1), in place, over the parameters <paramref name="p"/>, moments
    /// <paramref name="m"/> and <paramref name="v"/>, with the gradient <paramref name="g"/> already unscaled.
    /// </summary>
    public static void AdamW(Span<double> p, Span<double> m, Span<double> v, ReadOnlySpan<double> g, AdamWOptions options, long step)
    {
        double correction1 = 1 - Math.Pow(options.Beta1, step);
        double correction2 = 1 - Math.Pow(options.Beta2, step);
        for (int i = 0; i < p.Length; i++)
        {
            p[i] *= 1 - options.LearningRate * options.WeightDecay;
            m[i] = options.Beta1 * m[i] + (1 - options.Beta1) * g[i];
            v[i] = options.Beta2 * v[i] + (1 - options.Beta2) * g[i] * g[i];
            p[i] -= options.LearningRate / correction1 * m[i] / (Math.Sqrt(v[i]) / Math.Sqrt(correction2) + options.Epsilon);
        }
    }

    /// <summary>
    /// One SGD-with-momentum step, in place, over the parameters <paramref name="p"/> and momentum buffer
    /// <paramref name="b"/>; <paramref name="first"/> seeds the buffer with the (decayed) gradient, as PyTorch does.
    /// </summary>
    public static void Sgd(Span<double> p, Span<double> b, ReadOnlySpan<double> g, SgdOptions options, bool first)
    {
        for (int i = 0; i < p.Length; i++)
        {
            double gradient = g[i] + options.WeightDecay * p[i];
            b[i] = first ? gradient : options.Momentum * b[i] + (1 - options.Dampening) * gradient;
            p[i] -= options.LearningRate * (options.Nesterov ? gradient + options.Momentum * b[i] : b[i]);
        }
    }
}
