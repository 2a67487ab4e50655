namespace NativeTensor;

/// <summary>
/// Conversions between the floating-point dtypes (Float32, Float16, BFloat16), every backend bit-exact with
/// <see cref="Reference.PrecisionReference"/>: narrowing rounds to nearest, ties to even (subnormals included),
/// overflows to ±Inf, keeps ±0 and ±Inf, and keeps a NaN a NaN with its sign (quiet bit set, top payload bits
/// kept); widening is exact on bits. <see cref="UnscaleAndCheck"/> is the loss-scaling step of mixed-precision
/// training, fused with its non-finite check into one pass; it and <see cref="FindNonFinite"/> are the Unscale op family
/// (<c>Ops/Unscale.cs</c>, <c>Cpu/Unscale.cs</c>, <c>kernels/unscale.cl</c>, <see cref="Reference.UnscaleReference"/>).
/// </summary>
public static partial class Precision
{
    /// <summary>
    /// <c>output[i] = (to) source[i]</c>, element by element, same shape, on the source's device. Pass
    /// <paramref name="output"/> to reuse a buffer (it must match shape, dtype <paramref name="to"/> and device).
    /// Converting to the source's own dtype copies.
    /// </summary>
    /// <returns><paramref name="output"/> when given, else a new tensor.</returns>
    /// <exception cref="ArgumentNullException">source is null.</exception>
    /// <exception cref="ObjectDisposedException">source or output was disposed.</exception>
    /// <exception cref="ArgumentException">source or <paramref name="to"/> is not a floating-point dtype; output does not match.</exception>
    public static Tensor Convert(Tensor source, DType to, Tensor? output = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ObjectDisposedException.ThrowIf(source.IsDisposed, source);
        RequireFloat(source.DType, nameof(source));
        RequireFloat(to, nameof(to));
        long[] shape = [.. source.Shape];
        if (output is not null)
        {
            ObjectDisposedException.ThrowIf(output.IsDisposed, output);
            output.RequireWritable(nameof(output));
            if (output.DType != to)
                throw new ArgumentException($"output is {output.DType} but the conversion is to {to}", nameof(output));
            if (output.Device != source.Device)
                throw new ArgumentException($"output is on {output.Device} but source is on {source.Device}", nameof(output));
            if (!output.Shape.SequenceEqual(shape))
                throw new ArgumentException(
                    $"output has shape [{string.Join(", ", output.Shape)}] but source has [{string.Join(", ", shape)}]", nameof(output));
            if (ReferenceEquals(output, source))
                throw new ArgumentException("output is source itself: convert into another tensor", nameof(output));
        }
        Tensor result = output ?? Tensor.Allocate(to, shape, source.Device);
        try
        {
            if (source.ElementCount > 0)
                source.Device.Backend.Convert(source.Buffer, source.DType, result.Buffer, to, source.ElementCount);
            return result;
        }
        catch when (output is null)
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>True for the dtypes <see cref="Convert"/> moves between.</summary>
    public static bool IsFloatingPoint(DType dtype) => dtype is DType.Float32 or DType.Float16 or DType.BFloat16;

    private static void RequireFloat(DType dtype, string name)
    {
        if (!IsFloatingPoint(dtype))
            throw new ArgumentException($"{name} is {dtype}: conversions are between Float32, Float16 and BFloat16", name);
    }
}
