using NativeTensor.Runtime;

namespace NativeTensor;

/// <summary>
/// Fused optimizer steps for mixed-precision training, in place: one pass reads the gradient, the Float32 master
/// weights and the optimizer state once, and writes the weights, the state and an optional Float16/BFloat16 working
/// copy once (four passes and a conversion, unfused). The gradient may still carry the loss scale: it is multiplied by
/// <c>inverseScale</c> inside the same pass. <see cref="Reference.OptimizerStepsReference"/> is the math (in double);
/// every backend computes this binary32 sequence, each operation rounded to nearest even and none fused, with constants
/// derived in double and rounded once on the host, so backends agree bit for bit on every result that is not NaN
/// (NaN payloads and signs differ between CPUs and GPUs):
/// <code>
/// AdamW: g = G * inverseScale;  m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * (g * g);
///        p = p * (1 - lr * wd) - (lr / (1 - b1^t)) * (m / (sqrt(v) * (1 / sqrt(1 - b2^t)) + eps))
/// SGD:   g = G * inverseScale;  if (wd != 0) g = g + wd * p;  b = first ? g : mu * b + (1 - dampening) * g;
///        p = p - lr * (nesterov ? g + mu * b : b)
/// </code>
/// </summary>
/// <remarks>
/// A NaN or infinite gradient element is not special: it propagates into that element's weights and state, as in
/// PyTorch. To skip such steps, check first with <see cref="Precision.FindNonFinite"/> (as
/// <c>MixedPrecisionOptimizer</c> does). All arguments are checked before anything is written.
/// </remarks>
public static class OptimizerSteps
{
    /// <summary>
    /// AdamW step number <paramref name="step"/> (counted from 1; it sets the bias corrections):
    /// <c>g = gradient * inverseScale</c>, then <see cref="AdamWOptions"/>' update of <paramref name="parameters"/>,
    /// <paramref name="firstMoment"/> and <paramref name="secondMoment"/>, and <c>working = (working dtype) parameters</c>.
    /// </summary>
    /// <param name="parameters">Float32 master weights, updated in place.</param>
    /// <param name="gradient">Float32, Float16 or BFloat16, the shape of <paramref name="parameters"/>; only read.</param>
    /// <param name="firstMoment">Float32, same shape; zeros before step 1.</param>
    /// <param name="secondMoment">Float32, same shape; zeros before step 1.</param>
    /// <param name="options">The hyperparameters (validated here).</param>
    /// <param name="step">The step number, &gt;= 1.</param>
    /// <param name="inverseScale">The loss scale's reciprocal, finite and &gt; 0; 1 for an unscaled gradient.</param>
    /// <param name="working">Optional Float16 or BFloat16 copy of the new weights, same shape.</param>
    /// <exception cref="ArgumentNullException">A tensor or options is null.</exception>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    /// <exception cref="ArgumentException">A dtype, shape or device does not match, or one tensor is passed twice.</exception>
    /// <exception cref="ArgumentOutOfRangeException">step &lt; 1, inverseScale not finite and positive, or an option out of range.</exception>
    public static void AdamW(Tensor parameters, Tensor gradient, Tensor firstMoment, Tensor secondMoment, AdamWOptions options,
        long step, float inverseScale = 1, Tensor? working = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(secondMoment);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        StepBuffers buffers = Check(parameters, gradient, firstMoment, nameof(firstMoment), secondMoment, working, inverseScale);
        AdamWConstants constants = AdamWConstants.For(options, step, inverseScale);
        if (buffers.Count > 0) parameters.Device.Backend.AdamWStep(buffers, constants);
    }

    /// <summary>
    /// One SGD-with-momentum step: <c>g = gradient * inverseScale</c>, then <see cref="SgdOptions"/>' update of
    /// <paramref name="parameters"/> and <paramref name="momentumBuffer"/>, and <c>working = (working dtype) parameters</c>.
    /// </summary>
    /// <param name="parameters">Float32 master weights, updated in place.</param>
    /// <param name="gradient">Float32, Float16 or BFloat16, the shape of <paramref name="parameters"/>; only read.</param>
    /// <param name="momentumBuffer">Float32, same shape; its values are ignored when <paramref name="firstStep"/> (it is seeded then).</param>
    /// <param name="options">The hyperparameters (validated here).</param>
    /// <param name="firstStep">True on the first step, which seeds the momentum buffer with the gradient.</param>
    /// <param name="inverseScale">The loss scale's reciprocal, finite and &gt; 0; 1 for an unscaled gradient.</param>
    /// <param name="working">Optional Float16 or BFloat16 copy of the new weights, same shape.</param>
    /// <exception cref="ArgumentNullException">A tensor or options is null.</exception>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    /// <exception cref="ArgumentException">A dtype, shape or device does not match, or one tensor is passed twice.</exception>
    /// <exception cref="ArgumentOutOfRangeException">inverseScale not finite and positive, or an option out of range.</exception>
    public static void Sgd(Tensor parameters, Tensor gradient, Tensor momentumBuffer, SgdOptions options, bool firstStep,
        float inverseScale = 1, Tensor? working = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        StepBuffers buffers = Check(parameters, gradient, momentumBuffer, nameof(momentumBuffer), null, working, inverseScale);
        SgdConstants constants = SgdConstants.For(options, firstStep, inverseScale);
        if (buffers.Count > 0) parameters.Device.Backend.SgdStep(buffers, constants);
    }

    private static StepBuffers Check(Tensor parameters, Tensor gradient, Tensor first, string firstName, Tensor? second, Tensor? working, float inverseScale)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradient);
        ArgumentNullException.ThrowIfNull(first, firstName);
        if (!float.IsFinite(inverseScale) || inverseScale <= 0)
            throw new ArgumentOutOfRangeException(nameof(inverseScale), inverseScale, "inverseScale must be finite and greater than 0");
        Require(parameters, nameof(parameters), parameters, DType.Float32);
        Require(gradient, nameof(gradient), parameters, null);
        Require(first, firstName, parameters, DType.Float32);
        if (second is not null) Require(second, "secondMoment", parameters, DType.Float32);
        if (working is not null)
        {
            Require(working, nameof(working), parameters, null);
            if (working.DType is not (DType.Float16 or DType.BFloat16))
                throw new ArgumentException($"working is {working.DType}: a working copy is Float16 or BFloat16 (Float32 training updates parameters alone)", nameof(working));
        }
        parameters.RequireWritable(nameof(parameters));
        first.RequireWritable(firstName);
        second?.RequireWritable("secondMoment");
        working?.RequireWritable(nameof(working));
        Tensor?[] all = [parameters, gradient, first, second, working];
        string[] names = [nameof(parameters), nameof(gradient), firstName, "secondMoment", nameof(working)];
        for (int j = 1; j < all.Length; j++)
            for (int i = 0; i < j; i++)
                if (all[j] is not null && ReferenceEquals(all[i], all[j]))
                    throw new ArgumentException($"{names[j]} is the same tensor as {names[i]}: each must be its own", names[j]);
        return new StepBuffers(parameters.Buffer, gradient.Buffer, gradient.DType, first.Buffer, second?.Buffer,
            working?.Buffer, working?.DType ?? DType.Float16, parameters.ElementCount);
    }

    /// <summary>Alive, on the parameters' device with their shape, and of <paramref name="dtype"/> (any floating-point dtype when null).</summary>
    private static void Require(Tensor tensor, string name, Tensor parameters, DType? dtype)
    {
        ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);
        if (dtype is { } wanted ? tensor.DType != wanted : !Precision.IsFloatingPoint(tensor.DType))
            throw new ArgumentException($"{name} is {tensor.DType}: must be {(dtype?.ToString() ?? "Float32, Float16 or BFloat16")}", name);
        if (tensor.Device != parameters.Device)
            throw new ArgumentException($"{name} is on {tensor.Device} but parameters are on {parameters.Device}", name);
        if (!tensor.Shape.SequenceEqual(parameters.Shape))
            throw new ArgumentException(
                $"{name} has shape [{string.Join(", ", tensor.Shape)}] but parameters have [{string.Join(", ", parameters.Shape)}]", name);
    }
}
