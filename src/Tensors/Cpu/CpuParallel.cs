namespace NativeTensor.Cpu;

/// <summary>Splits a range of work units (bytes, rows) evenly over the cores, with the caller's thread taking a share.</summary>
internal static class CpuParallel
{
    /// <summary>How many pieces <paramref name="units"/> of work make: one below <paramref name="threshold"/>, else one per core.</summary>
    public static int Parts(long units, long threshold) =>
        units < threshold ? 1 : (int)Math.Min(Environment.ProcessorCount, Math.Max(1, units / (threshold / 2)));

    /// <summary>Runs <paramref name="body"/> on [lo, hi) pieces that tile [0, <paramref name="units"/>) in <paramref name="parts"/> near-equal parts.</summary>
    public static void For(int parts, long units, Action<long, long> body)
    {
        if (parts <= 1)
        {
            body(0, units);
            return;
        }
        Parallel.For(0, parts, p => body(units * p / parts, units * (p + 1) / parts));
    }
}
