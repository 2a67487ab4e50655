namespace NativeTensor;

/// <summary>
/// AdamW's hyperparameters (Loshchilov and Hutter, "Decoupled Weight Decay Regularization"), with PyTorch's
/// <c>torch.optim.AdamW</c> defaults. Held in double, as the user wrote them; each step derives the float constants
/// its kernel uses in double and rounds each once.
/// </summary>
/// <remarks>
/// One step t (counted from 1), element by element, with the gradient g already unscaled:
/// <code>
/// p  = p * (1 - lr * weightDecay)                       // decoupled weight decay, before the update
/// m  = beta1 * m + (1 - beta1) * g
/// v  = beta2 * v + (1 - beta2) * g * g
/// p  = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)
/// </code>
/// </remarks>
public sealed record AdamWOptions
{
    /// <summary>lr: finite and &gt; 0; 1e-3 by default.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>The first moment's decay, in [0, 1); 0.9 by default.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>The second moment's decay, in [0, 1); 0.999 by default.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Added to the denominator, finite and &gt; 0 (at least the smallest normal float); 1e-8 by default.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Decoupled weight decay, finite and &gt;= 0 with lr * weightDecay &lt;= 1; 1e-2 by default.</summary>
    public double WeightDecay { get; init; } = 1e-2;

    /// <summary>Throws unless every field is in its range: the message names the field, its value and the rule.</summary>
    public void Validate()
    {
        Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "finite and > 0");
        Require(Beta1 >= 0 && Beta1 < 1, nameof(Beta1), Beta1, "in [0, 1)");
        Require(Beta2 >= 0 && Beta2 < 1, nameof(Beta2), Beta2, "in [0, 1)");
        Require(double.IsFinite(Epsilon) && Epsilon >= SmallestNormal, nameof(Epsilon), Epsilon, "finite and >= 2^-126 (a normal float)");
        Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "finite and >= 0");
        Require(LearningRate * WeightDecay <= 1, nameof(WeightDecay), WeightDecay, $"lr * weightDecay <= 1 (lr = {LearningRate})");
    }

    internal const double SmallestNormal = 1.1754943508222875e-38;

    internal static void Require(bool ok, string name, double value, string rule)
    {
        if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{name} = {value}: must be {rule}");
    }
}

/// <summary>
/// Stochastic gradient descent with momentum, with <c>torch.optim.SGD</c>'s semantics (weight decay coupled into the
/// gradient, momentum buffer seeded with the first gradient, optional Nesterov).
/// </summary>
/// <remarks>
/// One step, element by element, with the gradient g already unscaled:
/// <code>
/// g = g + weightDecay * p
/// b = first step ? g : momentum * b + (1 - dampening) * g
/// p = p - lr * (nesterov ? g + momentum * b : b)
/// </code>
/// </remarks>
public sealed record SgdOptions
{
    /// <summary>lr: finite and &gt; 0; 1e-2 by default.</summary>
    public double LearningRate { get; init; } = 1e-2;

    /// <summary>The momentum factor, in (0, 1); 0.9 by default. (Plain SGD, momentum 0, has no fused kernel here.)</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Dampening of the new gradient's share, in [0, 1); 0 by default. Nesterov needs 0.</summary>
    public double Dampening { get; init; }

    /// <summary>L2 penalty added to the gradient, finite and &gt;= 0; 0 by default.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Nesterov momentum; false by default.</summary>
    public bool Nesterov { get; init; }

    /// <summary>Throws unless every field is in its range: the message names the field, its value and the rule.</summary>
    public void Validate()
    {
        AdamWOptions.Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "finite and > 0");
        AdamWOptions.Require(Momentum > 0 && Momentum < 1, nameof(Momentum), Momentum, "in (0, 1)");
        AdamWOptions.Require(Dampening >= 0 && Dampening < 1, nameof(Dampening), Dampening, "in [0, 1)");
        AdamWOptions.Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "finite and >= 0");
        if (Nesterov && Dampening != 0)
            throw new ArgumentOutOfRangeException(nameof(Dampening), Dampening, $"Dampening = {Dampening}: Nesterov momentum needs 0 (as in PyTorch)");
    }
}
