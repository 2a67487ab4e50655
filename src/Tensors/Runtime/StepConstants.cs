namespace NativeTensor.Runtime;

/// <summary>
/// The buffers of one fused optimizer step over <see cref="Count"/> elements: Float32 parameters (the master weights),
/// a gradient of any floating-point dtype, Float32 state (AdamW: first and second moments; SGD: the momentum buffer in
/// <see cref="FirstState"/>), and, when <see cref="Working"/> is set, a Float16 or BFloat16 working copy rewritten from
/// the new parameters in the same pass (<see cref="WorkingType"/> means nothing without it). Arguments arrive
/// validated: distinct buffers of one backend, each holding at least <see cref="Count"/> elements.
/// </summary>
internal readonly record struct StepBuffers(
    DeviceBuffer Parameters, DeviceBuffer Gradient, DType GradientType, DeviceBuffer FirstState, DeviceBuffer? SecondState,
    DeviceBuffer? Working, DType WorkingType, long Count);

/// <summary>
/// The float constants of one AdamW step (<see cref="AdamWOptions"/>' formula), each derived in double and rounded to
/// float once on the host, so every backend computes with the same bits. Per element, in binary32, every operation
/// rounded to nearest even and none fused (the order every kernel follows, and the one the tests' error bound,
/// <c>tests/Infrastructure/StepErrorBound.cs</c>, models against the double reference):
/// <code>
/// g  = G * InverseScale
/// m  = Beta1 * m + OneMinusBeta1 * g
/// v  = Beta2 * v + OneMinusBeta2 * (g * g)
/// p  = p * Decay - StepSize * (m / (sqrt(v) * InverseSqrtCorrection2 + Epsilon))
/// </code>
/// </summary>
internal readonly record struct AdamWConstants(
    float InverseScale, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2,
    float Decay, float StepSize, float InverseSqrtCorrection2, float Epsilon)
{
    /// <summary>The constants of step <paramref name="step"/> (from 1) of <paramref name="options"/> (validated).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A derived constant is not a finite float (a learning rate near float's limit).</exception>
    public static AdamWConstants For(AdamWOptions options, long step, float inverseScale)
    {
        double correction1 = 1 - Math.Pow(options.Beta1, step);
        double correction2 = 1 - Math.Pow(options.Beta2, step);
        var constants = new AdamWConstants(
            inverseScale, (float)options.Beta1, (float)(1 - options.Beta1), (float)options.Beta2, (float)(1 - options.Beta2),
            (float)(1 - options.LearningRate * options.WeightDecay), (float)(options.LearningRate / correction1),
            (float)(1 / Math.Sqrt(correction2)), (float)options.Epsilon);
        // Step 1 has the largest step size and correction (1 - beta^t only grows), so a checked first step covers all.
        if (!(constants.StepSize > 0) || !float.IsFinite(constants.StepSize) || !float.IsFinite(constants.InverseSqrtCorrection2)
            || !float.IsFinite(constants.Epsilon))
            throw new ArgumentOutOfRangeException(nameof(options), options,
                $"step {step}: lr / (1 - beta1^t) = {constants.StepSize}, 1 / sqrt(1 - beta2^t) = {constants.InverseSqrtCorrection2} " +
                $"and epsilon = {constants.Epsilon} must be finite floats, the step size above 0");
        return constants;
    }
}

/// <summary>
/// The float constants of one SGD-with-momentum step (<see cref="SgdOptions"/>' formula), rounded once from double.
/// Per element, in binary32, rounded to nearest even and not fused:
/// <code>
/// g = G * InverseScale
/// g = g + WeightDecay * p                               (only when WeightDecay != 0, as 0 * Inf is NaN)
/// b = First ? g : Momentum * b + OneMinusDampening * g
/// p = p - LearningRate * (Nesterov ? g + Momentum * b : b)
/// </code>
/// </summary>
internal readonly record struct SgdConstants(
    float InverseScale, float Momentum, float OneMinusDampening, float WeightDecay, float LearningRate, bool Nesterov, bool First)
{
    /// <summary>The constants of one step of <paramref name="options"/> (validated); <paramref name="first"/> seeds the buffer.</summary>
    public static SgdConstants For(SgdOptions options, bool first, float inverseScale)
    {
        var constants = new SgdConstants(inverseScale, (float)options.Momentum, (float)(1 - options.Dampening),
            (float)Math.Abs(options.WeightDecay), (float)options.LearningRate, options.Nesterov, first);  // Abs: -0 tests as "no decay" everywhere
        if (!(constants.LearningRate > 0) || !float.IsFinite(constants.LearningRate) || !float.IsFinite(constants.WeightDecay))
            throw new ArgumentOutOfRangeException(nameof(options), options,
                $"LearningRate = {constants.LearningRate} and WeightDecay = {constants.WeightDecay} as floats: both finite, the rate above 0");
        return constants;
    }
}
