namespace NativeTensor.Reference;

/// <summary>
/// The specification of <see cref="Windows"/> as plain scalar code over host arrays: one element at a time,
/// indices spelled out, nothing clever. Every backend is compared with this.
/// </summary>
public static class WindowsReference
{
    /// <summary>
    /// <c>out[b, t, r] = frames[starts[b] + t, r]</c> for frames of <paramref name="frameCount"/> rows, where r runs
    /// over the <paramref name="rowElements"/> elements after axis 0 (zero for frames such as [N, 0]). Throws <see cref="ArgumentOutOfRangeException"/> for a start whose window leaves the frames.
    /// </summary>
    public static T[] Gather<T>(T[] frames, long frameCount, long rowElements, IReadOnlyList<long> starts, int window)
    {
        var output = new T[(long)starts.Count * window * rowElements];
        for (int b = 0; b < starts.Count; b++)
        {
            if (starts[b] < 0 || starts[b] + window > frameCount)
                throw new ArgumentOutOfRangeException(nameof(starts), starts[b], $"starts[{b}] out of range");
            for (int t = 0; t < window; t++)
                for (long r = 0; r < rowElements; r++)
                    output[((long)b * window + t) * rowElements + r] = frames[(starts[b] + t) * rowElements + r];
        }
        return output;
    }

    /// <summary><c>out[s, t, r] = frames[s * stride + t, r]</c> for every window s in [0, (N - window) / stride + 1).</summary>
    public static T[] Eager<T>(T[] frames, long frameCount, long rowElements, int window, int stride)
    {
        long count = frameCount < window ? 0 : (frameCount - window) / stride + 1;
        var starts = new long[count];
        for (long s = 0; s < count; s++) starts[s] = s * stride;
        return Gather(frames, frameCount, rowElements, starts, window);
    }
}
