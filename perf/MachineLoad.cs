using System.Diagnostics;
using System.Globalization;

namespace NativeTensor.Perf;

/// <summary>
/// How busy the machine was with work that is not ours while we timed, from <c>/proc/stat</c> (all CPUs) minus this
/// process's own CPU time. On a small shared machine another build or test run halves a two-thread kernel's speed,
/// so the report says how much of the machine was taken, instead of leaving a reader to guess from the spread.
/// </summary>
internal sealed class MachineLoad
{
    private readonly Snapshot _start = Snapshot.Take();

    /// <summary>Starts counting now.</summary>
    public static MachineLoad Start() => new();

    /// <summary>e.g. <c>other processes 3% of 2 CPUs, steal 0%</c>; empty where /proc/stat is missing.</summary>
    public string Describe(out bool busy)
    {
        Snapshot end = Snapshot.Take();
        long total = end.Total - _start.Total;
        busy = false;
        if (total <= 0 || _start.Total == 0) return "";
        double ownTicks = (end.Own - _start.Own).TotalSeconds * Snapshot.TicksPerSecond;
        double other = Math.Max(0, end.Busy - _start.Busy - (end.Steal - _start.Steal) - ownTicks) / total;
        double steal = (double)(end.Steal - _start.Steal) / total;
        busy = other > 0.10 || steal > 0.10;
        return $"other processes {other * 100:F0}% of {Environment.ProcessorCount} CPUs, steal {steal * 100:F0}%";
    }

    private readonly record struct Snapshot(long Total, long Busy, long Steal, TimeSpan Own)
    {
        /// <summary>USER_HZ, the unit of /proc/stat: 100 on every Linux that .NET runs on.</summary>
        public const double TicksPerSecond = 100;

        public static Snapshot Take()
        {
            TimeSpan own = Process.GetCurrentProcess().TotalProcessorTime;
            try
            {
                // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
                string[] fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                long[] ticks = fields.Skip(1).Take(8).Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
                long total = ticks.Sum(), idle = ticks[3] + ticks[4];
                return new Snapshot(total, total - idle, ticks[7], own);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                return new Snapshot(0, 0, 0, own);
            }
        }
    }
}
