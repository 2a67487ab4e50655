namespace NativeTensor.Runtime;

/// <summary>
/// The rule every window start obeys, <c>0 &lt;= s</c> and <c>s + window &lt;= frameCount</c>, and its wording: one place
/// for the host check of <c>Ops/</c> and the device-side flag of every backend.
/// </summary>
internal static class WindowStarts
{
    public static string Message(long index, long value, int window, long frameCount) => value < 0
        ? $"starts[{index}] = {value}: starts must be >= 0"
        : $"starts[{index}] = {value}: window {window} runs past frame count {frameCount}";

    /// <summary>
    /// Throws for the first start that breaks the rule (written so it cannot overflow). <paramref name="firstIndex"/> is
    /// the batch index of <c>starts[0]</c>, so a batch checked in slices names the bad start by its place in the whole batch.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A start breaks the rule; the message names its index and value.</exception>
    public static void Check(ReadOnlySpan<long> starts, int window, long frameCount, long firstIndex = 0)
    {
        long last = frameCount - window;
        for (int i = 0; i < starts.Length; i++)
        {
            long s = starts[i];
            if ((ulong)s > (ulong)last)
                throw new ArgumentOutOfRangeException(nameof(starts), s, Message(firstIndex + i, s, window, frameCount));
        }
    }

    /// <summary>The exception for a start a kernel flagged, worded as the host check words it.</summary>
    public static ArgumentOutOfRangeException BadOnDevice(long index, long value, int window, long frameCount) =>
        new("starts", value, Message(index, value, window, frameCount) + " (checked on the device)");
}
