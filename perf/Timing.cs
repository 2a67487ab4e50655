using System.Diagnostics;
using NativeTensor.Runtime;

namespace NativeTensor.Perf;

/// <summary>How many times to run a measured body: warm-up (at least this many runs and this long), then timed reps.</summary>
internal sealed record RunPlan(int WarmupReps, double WarmupMilliseconds, int Reps)
{
    /// <summary>A full run: 100 timed reps after at least 10 runs and 1 s of warm-up (tiered JIT and GPU kernel builds settle).</summary>
    public static RunPlan Full { get; } = new(10, 1000, 100);

    /// <summary>A smoke run: few reps, not figures to publish; the warm-up stays a full second, as tier-1 code takes that long to arrive on two cores.</summary>
    public static RunPlan Quick { get; } = new(3, 1000, 10);

    /// <summary>Start sets a case needs: one per warm-up slot and one per timed rep, so no rep reuses another's starts.</summary>
    public int Sets => WarmupReps + Reps;
}

/// <summary>A median and its spread, in milliseconds.</summary>
internal readonly record struct Timing(double MedianMs, double MinMs, double MaxMs, int Reps)
{
    /// <summary>Achieved bandwidth at the median, in GB/s (10^9 bytes per second).</summary>
    public double GigabytesPerSecond(long bytesMoved) => bytesMoved / (MedianMs * 1e6);

    public static Timing Of(double[] milliseconds) =>
        new(Median(milliseconds), milliseconds.Min(), milliseconds.Max(), milliseconds.Length);

    public static double Median(double[] values)
    {
        double[] sorted = (double[])values.Clone();
        Array.Sort(sorted);
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}

/// <summary>The timing harness: warm-up, then one device-event pair around each rep.</summary>
internal static class Timer
{
    /// <summary>
    /// Times several bodies rep by rep, interleaved, so a burst of load from elsewhere on the machine lands on all
    /// of them alike and their ratios stay honest. Each body(set) runs with sets 0 .. WarmupReps-1 (cycled) until
    /// the warm-up is done, then once for each set WarmupReps .. Sets-1; in rep r the bodies start at body r mod n,
    /// so none always runs first. Each rep is timed between two <see cref="Backend.RecordEvent"/> marks: device
    /// events on a GPU, a high-resolution clock on the CPU (whose work is synchronous).
    /// </summary>
    public static Timing[] Interleaved(Backend backend, RunPlan plan, IReadOnlyList<Action<int>> bodies)
    {
        long began = Stopwatch.GetTimestamp();
        for (int i = 0; i < plan.WarmupReps || Stopwatch.GetElapsedTime(began).TotalMilliseconds < plan.WarmupMilliseconds; i++)
        {
            foreach (Action<int> body in bodies) body(i % plan.WarmupReps);
            // Device launches return at once: without a wait per round, a second of wall time would queue hours of work.
            backend.Synchronize();
        }

        int n = bodies.Count;
        var milliseconds = new double[n][];
        for (int k = 0; k < n; k++) milliseconds[k] = new double[plan.Reps];
        for (int r = 0; r < plan.Reps; r++)
        {
            for (int j = 0; j < n; j++)
            {
                int k = (r + j) % n;
                using DeviceEvent start = backend.RecordEvent();
                bodies[k](plan.WarmupReps + r);
                using DeviceEvent end = backend.RecordEvent();
                milliseconds[k][r] = end.MillisecondsSince(start);
            }
        }
        return milliseconds.Select(Timing.Of).ToArray();
    }
}
