namespace NativeTensor.Training;

/// <summary>
/// An optimizer for mixed-precision training: it keeps Float32 master weights (the caller's tensors, updated in place),
/// the optimizer state in Float32, and a Float16 or BFloat16 working copy of every weight for the forward and backward
/// passes. Each <see cref="Step"/> checks the (loss-scaled) gradients for NaN and ±Inf in one read-only pass, lets the
/// <see cref="DynamicLossScaler"/> decide, and then either skips the step or runs one fused kernel per weight
/// (<see cref="OptimizerSteps"/>) that unscales the gradient, updates weights and state, and rewrites the working copy
/// in a single pass over memory.
/// </summary>
/// <remarks>
/// <para>With no scaler, gradients are taken as unscaled and a step with a non-finite gradient is still skipped
/// (<see cref="DynamicLossScaler.Disabled"/>): a non-finite gradient never reaches the master weights. (Finite
/// gradients can still overflow inside a step, for instance times an inverse scale above 1, as in PyTorch.)</para>
/// <para>The optimizer updates its scaler itself, once per <see cref="Step"/>: give each optimizer its own scaler and
/// do not call <see cref="DynamicLossScaler.Update"/> alongside it.</para>
/// <para>With <c>workingType</c> Float32 there is no copy: <see cref="WorkingWeights"/> are the master weights.</para>
/// <para>Not thread-safe: one training loop drives one optimizer.</para>
/// </remarks>
public sealed class MixedPrecisionOptimizer : IDisposable
{
    private readonly Tensor[] _master;
    private readonly Tensor[] _working;
    private readonly Tensor[] _first;
    private readonly Tensor[]? _second;
    private readonly bool _ownsWorking;
    private readonly AdamWOptions? _adamW;
    private readonly SgdOptions? _sgd;
    private bool _disposed;

    /// <summary>AdamW over <paramref name="masterWeights"/>, with zeroed moments and a fresh working copy.</summary>
    /// <param name="masterWeights">Float32 tensors, all on one device, each once; updated in place, never disposed here.</param>
    /// <param name="workingType">Float16, BFloat16, or Float32 for no separate copy.</param>
    /// <param name="options">AdamW's hyperparameters (validated here).</param>
    /// <param name="scaler">The loss scaler, or null for unscaled gradients (non-finite steps are still skipped).</param>
    /// <exception cref="ArgumentNullException">A list, an element of it, or options is null.</exception>
    /// <exception cref="ArgumentException">A master weight is not Float32, is read-only, repeats, or is on another device; workingType is not floating-point.</exception>
    /// <exception cref="ObjectDisposedException">A master weight was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range, or gives a step constant that is not a finite float.</exception>
    /// <exception cref="NativeTensorException">The device cannot run the fused steps (an OpenCL device that flushes subnormals).</exception>
    /// <remarks>The constructor runs one step on a one-element scratch weight on the masters' device: it builds the kernels
    /// and proves the device and the options can run, so <see cref="Step"/> never fails halfway for those reasons.</remarks>
    public MixedPrecisionOptimizer(IReadOnlyList<Tensor> masterWeights, DType workingType, AdamWOptions options, DynamicLossScaler? scaler = null)
        : this(masterWeights, workingType, scaler, options ?? throw new ArgumentNullException(nameof(options)), null, states: 2)
    {
    }

    /// <summary>SGD with momentum over <paramref name="masterWeights"/>; otherwise as the AdamW constructor.</summary>
    public MixedPrecisionOptimizer(IReadOnlyList<Tensor> masterWeights, DType workingType, SgdOptions options, DynamicLossScaler? scaler = null)
        : this(masterWeights, workingType, scaler, null, options ?? throw new ArgumentNullException(nameof(options)), states: 1)
    {
    }

    private MixedPrecisionOptimizer(IReadOnlyList<Tensor> masterWeights, DType workingType, DynamicLossScaler? scaler,
        AdamWOptions? adamW, SgdOptions? sgd, int states)
    {
        ArgumentNullException.ThrowIfNull(masterWeights);
        adamW?.Validate();
        sgd?.Validate();
        if (!Precision.IsFloatingPoint(workingType))
            throw new ArgumentException($"workingType is {workingType}: must be Float16, BFloat16, or Float32 for no copy", nameof(workingType));
        _master = [.. masterWeights];
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < _master.Length; i++)
        {
            Tensor weight = _master[i] ?? throw new ArgumentNullException(nameof(masterWeights), $"masterWeights[{i}] is null");
            ObjectDisposedException.ThrowIf(weight.IsDisposed, weight);
            if (weight.IsReadOnly)
                throw new ArgumentException($"masterWeights[{i}] is read-only (a view of a mapped file): the optimizer updates master weights in place; copy it with To(device) first", nameof(masterWeights));
            if (weight.DType != DType.Float32)
                throw new ArgumentException($"masterWeights[{i}] is {weight.DType}: master weights are Float32", nameof(masterWeights));
            if (weight.Device != _master[0].Device)
                throw new ArgumentException($"masterWeights[{i}] is on {weight.Device} but masterWeights[0] is on {_master[0].Device}", nameof(masterWeights));
            if (!seen.Add(weight))
                throw new ArgumentException($"masterWeights[{i}] appears earlier in the list: it would be stepped twice", nameof(masterWeights));
        }
        if (_master.Length > 0) Probe(_master[0].Device, workingType, adamW, sgd);
        _adamW = adamW;
        _sgd = sgd;
        WorkingType = workingType;
        Scaler = scaler ?? DynamicLossScaler.Disabled();
        _ownsWorking = workingType != DType.Float32;
        var owned = new List<Tensor>();
        try
        {
            _working = _ownsWorking ? [.. _master.Select(w => Own(owned, Precision.Convert(w, workingType)))] : _master;
            _first = [.. _master.Select(w => Own(owned, Tensor.Zeros(DType.Float32, w.Shape, w.Device)))];
            _second = states == 2 ? [.. _master.Select(w => Own(owned, Tensor.Zeros(DType.Float32, w.Shape, w.Device)))] : null;
        }
        catch
        {
            foreach (Tensor tensor in owned) tensor.Dispose();
            throw;
        }
    }

    /// <summary>One step of the options on a one-element scratch weight (step 1 has the largest constants) and one check.</summary>
    private static void Probe(Device device, DType workingType, AdamWOptions? adamW, SgdOptions? sgd)
    {
        using Tensor p = Tensor.Zeros(DType.Float32, [1], device);
        using Tensor g = Tensor.Zeros(DType.Float32, [1], device);
        using Tensor m = Tensor.Zeros(DType.Float32, [1], device);
        using Tensor v = Tensor.Zeros(DType.Float32, [1], device);
        using Tensor? w = workingType == DType.Float32 ? null : Tensor.Zeros(workingType, [1], device);
        _ = Precision.FindNonFinite([g]);
        if (adamW is not null) OptimizerSteps.AdamW(p, g, m, v, adamW, 1, 1, w);
        else OptimizerSteps.Sgd(p, g, m, sgd!, true, 1, w);
    }

    /// <summary>The Float32 master weights, in the order given (the caller's tensors).</summary>
    public IReadOnlyList<Tensor> MasterWeights => _master;

    /// <summary>The low-precision copies the model computes with, rewritten by every applied step; the masters for Float32.</summary>
    public IReadOnlyList<Tensor> WorkingWeights => _working;

    /// <summary>The working copies' dtype.</summary>
    public DType WorkingType { get; }

    /// <summary>The loss scaler consulted on every step (<see cref="DynamicLossScaler.Disabled"/> when none was given).</summary>
    public DynamicLossScaler Scaler { get; }

    /// <summary>Steps applied so far (the t of AdamW's bias corrections).</summary>
    public long StepCount { get; private set; }

    /// <summary>Steps skipped because a gradient held NaN or ±Inf.</summary>
    public long SkippedSteps { get; private set; }

    /// <summary>
    /// One optimizer step with gradients of the loss multiplied by <see cref="DynamicLossScaler.Scale"/>: checks them for
    /// NaN and ±Inf, updates the scaler, and, unless skipped, steps every weight with the gradient unscaled by the
    /// scale that produced it.
    /// </summary>
    /// <param name="gradients">One per master weight, same order, shape and device; Float32, Float16 or BFloat16; only read.</param>
    /// <returns>True if the step was applied; false if it was skipped because a gradient was not finite.</returns>
    /// <exception cref="ArgumentNullException">gradients or an element is null.</exception>
    /// <exception cref="ArgumentException">A gradient's count, shape, device or dtype does not match, or a gradient is a weight or state tensor.</exception>
    /// <exception cref="ObjectDisposedException">This optimizer or a tensor was disposed.</exception>
    /// <remarks>All gradients are checked before anything is written or the scaler changes.</remarks>
    public bool Step(IReadOnlyList<Tensor> gradients)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(gradients);
        if (gradients.Count != _master.Length)
            throw new ArgumentException($"{gradients.Count} gradients for {_master.Length} master weights: one each, in the same order", nameof(gradients));
        var mine = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (Tensor[]? group in new[] { _master, _working, _first, _second })
            if (group is not null)
                foreach (Tensor tensor in group)
                {
                    ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);   // e.g. a working weight disposed by the caller
                    mine.Add(tensor);
                }
        for (int i = 0; i < gradients.Count; i++)
        {
            Tensor gradient = gradients[i] ?? throw new ArgumentNullException(nameof(gradients), $"gradients[{i}] is null");
            ObjectDisposedException.ThrowIf(gradient.IsDisposed, gradient);
            Tensor master = _master[i];
            if (!Precision.IsFloatingPoint(gradient.DType))
                throw new ArgumentException($"gradients[{i}] is {gradient.DType}: must be Float32, Float16 or BFloat16", nameof(gradients));
            if (gradient.Device != master.Device)
                throw new ArgumentException($"gradients[{i}] is on {gradient.Device} but masterWeights[{i}] is on {master.Device}", nameof(gradients));
            if (!gradient.Shape.SequenceEqual(master.Shape))
                throw new ArgumentException(
                    $"gradients[{i}] has shape [{string.Join(", ", gradient.Shape)}] but masterWeights[{i}] has [{string.Join(", ", master.Shape)}]", nameof(gradients));
            if (mine.Contains(gradient))
                throw new ArgumentException($"gradients[{i}] is one of this optimizer's weight or state tensors", nameof(gradients));
        }
        // The scale the gradients were produced with: Update may grow it.
        float inverseScale = Scaler.InverseScale;
        bool apply = Scaler.Update(Precision.FindNonFinite(gradients));
        if (!apply)
        {
            SkippedSteps++;
            return false;
        }
        long step = StepCount + 1;
        for (int i = 0; i < _master.Length; i++)
        {
            Tensor? working = _ownsWorking ? _working[i] : null;
            if (_adamW is not null)
                OptimizerSteps.AdamW(_master[i], gradients[i], _first[i], _second![i], _adamW, step, inverseScale, working);
            else
                OptimizerSteps.Sgd(_master[i], gradients[i], _first[i], _sgd!, firstStep: step == 1, inverseScale, working);
        }
        StepCount = step;
        return true;
    }

    /// <summary>Frees the state and working copies this optimizer allocated; the master weights stay the caller's.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsWorking)
            foreach (Tensor tensor in _working) tensor.Dispose();
        foreach (Tensor tensor in _first) tensor.Dispose();
        if (_second is not null)
            foreach (Tensor tensor in _second) tensor.Dispose();
    }

    private static Tensor Own(List<Tensor> owned, Tensor tensor)
    {
        owned.Add(tensor);
        return tensor;
    }
}
