namespace NativeTensor.Memory;

/// <summary>
/// What a window data set costs in memory, materialised (eager) or cut per batch (lazy), before anything is allocated.
/// </summary>
/// <param name="FrameBytes">The frames tensor: N rows of the row size.</param>
/// <param name="Windows">How many windows the frames hold: <see cref="NativeTensor.Windows.Count"/>.</param>
/// <param name="EagerBytes">Every window as a copy: Windows * window * row bytes.</param>
/// <param name="BatchBytes">One gathered batch: batch * window * row bytes.</param>
public sealed record WindowMemory(long FrameBytes, long Windows, long EagerBytes, long BatchBytes)
{
    /// <summary>The estimate for <paramref name="frames"/> rows of <paramref name="rowBytes"/> bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A count is negative, window/stride/batch &lt; 1.</exception>
    /// <exception cref="OverflowException">A byte count does not fit 64 bits.</exception>
    public static WindowMemory For(long frames, long rowBytes, int window, int stride, int batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rowBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        long windows = NativeTensor.Windows.Count(frames, window, stride);
        long windowBytes = checked(window * rowBytes);
        return new WindowMemory(checked(frames * rowBytes), windows, checked(windows * windowBytes), checked(batch * windowBytes));
    }

    /// <summary>Lazy needs the frames plus the batches in flight: <paramref name="batchesInFlight"/> output buffers.</summary>
    public long LazyBytes(int batchesInFlight) => checked(FrameBytes + batchesInFlight * BatchBytes);

    /// <summary>EagerBytes over LazyBytes: how many times less memory the lazy path holds.</summary>
    public double Reduction(int batchesInFlight) => (double)EagerBytes / LazyBytes(batchesInFlight);
}
