namespace NativeTensor;

/// <summary>
/// The Unscale op family: the loss-scaling step of mixed-precision training fused with its non-finite check, and the
/// read-only check alone. Its public entry points live on <see cref="Precision"/> beside the conversions they are used
/// with; every other room names the family Unscale (<c>Cpu/Unscale.cs</c>, <c>Runtime/Kernels/Unscale.cs</c>,
/// <c>kernels/unscale.cl</c>, <see cref="Reference.UnscaleReference"/>, the Unscale parity tests and perf section).
/// </summary>
public static partial class Precision
{
    /// <summary>
    /// The mixed-precision step before an optimizer (PyTorch's <c>_amp_foreach_non_finite_check_and_unscale_</c>): for
    /// every element of every gradient, in place, <c>g[i] = g[i] * inverseScale</c>, the correctly rounded binary32
    /// product (a BFloat16 gradient widens exactly, is multiplied in binary32 and rounds to nearest even back to
    /// BFloat16). Every element is multiplied, even once a non-finite value has been seen. Bit-exact on every backend
    /// with <see cref="Reference.UnscaleReference.Unscale"/>: subnormal inputs and products are kept, a product past
    /// the largest finite value becomes ±Inf, and a NaN stays a NaN with its sign and payload, quiet bit set.
    /// </summary>
    /// <param name="gradients">Float32 or BFloat16 tensors (mixed freely), all on one device, each at most once.</param>
    /// <param name="inverseScale">The reciprocal of the loss scale: finite and greater than 0.</param>
    /// <returns>
    /// True iff any input element was NaN or ±Inf <em>before</em> scaling (a finite value whose product overflows does
    /// not count, as in PyTorch); false for an empty list.
    /// </returns>
    /// <exception cref="ArgumentNullException">gradients or one of its elements is null.</exception>
    /// <exception cref="ObjectDisposedException">A gradient was disposed.</exception>
    /// <exception cref="ArgumentException">A gradient is not Float32 or BFloat16, is on another device than gradients[0], or appears twice.</exception>
    /// <exception cref="ArgumentOutOfRangeException">inverseScale is not finite or not greater than 0.</exception>
    /// <remarks>All arguments are checked before any element is written.</remarks>
    public static bool UnscaleAndCheck(IReadOnlyList<Tensor> gradients, float inverseScale)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        if (!float.IsFinite(inverseScale) || inverseScale <= 0)
            throw new ArgumentOutOfRangeException(nameof(inverseScale), inverseScale, "inverseScale must be finite and greater than 0");
        if (gradients.Count == 0) return false;
        var work = new (Runtime.DeviceBuffer Buffer, DType DType, long Count)[gradients.Count];
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        Device? device = null;
        for (int i = 0; i < gradients.Count; i++)
        {
            Tensor gradient = gradients[i] ?? throw new ArgumentNullException(nameof(gradients), $"gradients[{i}] is null");
            ObjectDisposedException.ThrowIf(gradient.IsDisposed, gradient);
            if (gradient.IsReadOnly)
                throw new ArgumentException($"gradients[{i}] is read-only (a view of a mapped file): UnscaleAndCheck scales in place", nameof(gradients));
            if (gradient.DType is not (DType.Float32 or DType.BFloat16))
                throw new ArgumentException(gradient.DType == DType.Float16
                    ? $"gradients[{i}] is Float16: UnscaleAndCheck takes Float32 or BFloat16 gradients; widen Float16 ones with Precision.Convert first"
                    : $"gradients[{i}] is {gradient.DType}: gradients must be Float32 or BFloat16", nameof(gradients));
            device ??= gradient.Device;
            if (gradient.Device != device)
                throw new ArgumentException($"gradients[{i}] is on {gradient.Device} but gradients[0] is on {device}: all must be on one device", nameof(gradients));
            if (!seen.Add(gradient))
                throw new ArgumentException($"gradients[{i}] appears earlier in the list: it would be scaled twice", nameof(gradients));
            work[i] = (gradient.Buffer, gradient.DType, gradient.ElementCount);
        }
        return device!.Backend.UnscaleAndCheck(work, inverseScale);
    }

    /// <summary>
    /// Whether any element of any tensor is NaN or ±Inf: a read-only pass with one device flag and one read-back for the
    /// whole list. The check an optimizer makes before a step that folds the unscale into its own pass (see
    /// <see cref="OptimizerSteps"/>); unlike <see cref="UnscaleAndCheck"/>, Float16 tensors are accepted.
    /// </summary>
    /// <param name="tensors">Float32, Float16 or BFloat16 tensors, all on one device (a tensor may repeat: nothing is written).</param>
    /// <returns>True iff some element is NaN or ±Inf; false for an empty list.</returns>
    /// <exception cref="ArgumentNullException">tensors or one of its elements is null.</exception>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    /// <exception cref="ArgumentException">A tensor is not floating-point, or is on another device than tensors[0].</exception>
    public static bool FindNonFinite(IReadOnlyList<Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Count == 0) return false;
        var work = new (Runtime.DeviceBuffer Buffer, DType DType, long Count)[tensors.Count];
        Device? device = null;
        for (int i = 0; i < tensors.Count; i++)
        {
            Tensor tensor = tensors[i] ?? throw new ArgumentNullException(nameof(tensors), $"tensors[{i}] is null");
            ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);
            if (!IsFloatingPoint(tensor.DType))
                throw new ArgumentException($"tensors[{i}] is {tensor.DType}: must be Float32, Float16 or BFloat16", nameof(tensors));
            device ??= tensor.Device;
            if (tensor.Device != device)
                throw new ArgumentException($"tensors[{i}] is on {tensor.Device} but tensors[0] is on {device}: all must be on one device", nameof(tensors));
            work[i] = (tensor.Buffer, tensor.DType, tensor.ElementCount);
        }
        return device!.Backend.FindNonFinite(work);
    }
}
