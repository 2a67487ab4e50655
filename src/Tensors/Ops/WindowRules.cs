namespace NativeTensor;

/// <summary>The argument rules of <see cref="Windows"/>, one place for their checks and their wording.</summary>
internal static class WindowRules
{
    public static void Window(int window)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, $"window = {window}: must be >= 1");
    }

    public static void Stride(int stride)
    {
        if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), stride, $"stride = {stride}: must be >= 1");
    }

    /// <summary>Frames must be live, of rank >= 1, and hold at least one window.</summary>
    public static void Frames(Tensor frames, int window)
    {
        ArgumentNullException.ThrowIfNull(frames);
        ObjectDisposedException.ThrowIf(frames.IsDisposed, frames);
        if (frames.Rank < 1)
            throw new ArgumentException("frames has rank 0: windows run along axis 0, so frames needs rank >= 1", nameof(frames));
        Window(window);
        if (window > frames.Shape[0])
            throw new ArgumentOutOfRangeException(nameof(window), window, $"window = {window} exceeds frame count {frames.Shape[0]}");
    }

    /// <summary>The batch's dtype: <paramref name="outputType"/>, or the frames' own; converting needs two floating-point dtypes.</summary>
    public static DType OutputType(Tensor frames, DType? outputType)
    {
        DType to = outputType ?? frames.DType;
        if (to != frames.DType && !(Precision.IsFloatingPoint(frames.DType) && Precision.IsFloatingPoint(to)))
            throw new ArgumentException(
                $"outputType {to} from frames of {frames.DType}: a gather converts only between Float32, Float16 and BFloat16", nameof(outputType));
        _ = to.SizeOf();
        return to;
    }

    /// <summary>Every start s must satisfy 0 &lt;= s and s + window &lt;= frameCount; see <see cref="Runtime.WindowStarts.Check"/>.</summary>
    public static void Starts(ReadOnlySpan<long> starts, int window, long frameCount) => Runtime.WindowStarts.Check(starts, window, frameCount);

    public static void StartsTensor(Tensor starts, Tensor frames)
    {
        ArgumentNullException.ThrowIfNull(starts);
        ObjectDisposedException.ThrowIf(starts.IsDisposed, starts);
        if (starts.DType != DType.Int64)
            throw new ArgumentException($"starts is {starts.DType}: must be Int64", nameof(starts));
        if (starts.Rank != 1)
            throw new ArgumentException($"starts has shape [{string.Join(", ", starts.Shape)}]: must be rank 1 [batch]", nameof(starts));
        if (starts.Device != frames.Device)
            throw new ArgumentException($"starts is on {starts.Device} but frames is on {frames.Device}: move it with To()", nameof(starts));
        if (starts.Shape[0] > int.MaxValue)
            throw new ArgumentException($"starts has {starts.Shape[0]} entries: a batch holds at most {int.MaxValue}", nameof(starts));
    }

    /// <summary>The window tensor's shape: [batch, window, frames.Shape[1..]].</summary>
    public static long[] OutputShape(Tensor frames, long batch, int window)
    {
        var shape = new long[frames.Rank + 1];
        shape[0] = batch;
        shape[1] = window;
        for (int i = 1; i < frames.Rank; i++) shape[i + 1] = frames.Shape[i];
        _ = checked(Tensor.Product(shape) * frames.DType.SizeOf());
        return shape;
    }

    /// <summary>A caller's output must be live and match shape, dtype and device exactly (its rank is one above frames', so it cannot be frames).</summary>
    public static void Output(Tensor output, Tensor frames, long[] shape, DType to)
    {
        ObjectDisposedException.ThrowIf(output.IsDisposed, output);
        output.RequireWritable(nameof(output));
        if (output.DType != to)
            throw new ArgumentException(to == frames.DType
                ? $"output is {output.DType} but frames is {frames.DType}: pass outputType: DType.{output.DType} to convert while gathering"
                : $"output is {output.DType} but outputType is {to}", nameof(output));
        if (output.Device != frames.Device)
            throw new ArgumentException($"output is on {output.Device} but frames is on {frames.Device}", nameof(output));
        if (!output.Shape.SequenceEqual(shape))
            throw new ArgumentException(
                $"output has shape [{string.Join(", ", output.Shape)}] but the windows need [{string.Join(", ", shape)}]", nameof(output));
    }
}
