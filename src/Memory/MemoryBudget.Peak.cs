using System.Diagnostics;

namespace NativeTensor.Memory;

/// <summary>
/// Resets of the kernel's high-water mark, and the memory of what each reset erased: the process's lifetime peak and
/// the peaks of the scopes open at the time.
/// </summary>
internal static class PeakTracker
{
    private const string ClearRefs = "/proc/self/clear_refs";
    private static readonly Lock Gate = new();
    private static readonly List<MemoryMeasurement> OpenScopes = [];
    private static long s_peakBeforeResets;
    private static bool s_resetRefused;

    /// <summary>The larger of the kernel's VmHWM and every VmHWM read just before a reset.</summary>
    public static long LifetimePeak(long kernelPeak)
    {
        lock (Gate) return Math.Max(kernelPeak, s_peakBeforeResets);
    }

    /// <summary>The resident set and peak now (VmRSS, VmHWM; the working set off Linux).</summary>
    public static (long Rss, long Peak) Sample()
    {
        if (OperatingSystem.IsLinux()) return ProcFiles.ReadStatus(MemoryBudget.ReadSystemFile);
        using Process self = Process.GetCurrentProcess();
        return (self.WorkingSet64, self.PeakWorkingSet64);
    }

    /// <summary>Registers a scope and resets the mark if the kernel lets us; returns whether it did, the RSS and the mark after.</summary>
    public static (bool Reset, long Rss, long Peak) Open(MemoryMeasurement scope)
    {
        lock (Gate)
        {
            (long rss, long peak) = Sample();
            bool reset = OperatingSystem.IsLinux() && !s_resetRefused && TryReset();
            if (reset)
            {
                s_peakBeforeResets = Math.Max(s_peakBeforeResets, peak);
                foreach (MemoryMeasurement open in OpenScopes) open.NoteReset(peak);
                (rss, peak) = Sample();
            }
            OpenScopes.Add(scope);
            return (reset, rss, peak);
        }
    }

    /// <summary>Unregisters a scope and returns the final sample.</summary>
    public static (long Rss, long Peak) Close(MemoryMeasurement scope)
    {
        lock (Gate)
        {
            OpenScopes.Remove(scope);
            return Sample();
        }
    }

    private static bool TryReset()
    {
        try
        {
            // "5" resets the peak RSS (VmHWM) to the current RSS (Documentation/filesystems/proc.rst, "clear_refs").
            File.WriteAllText(ClearRefs, "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            s_resetRefused = true;   // EINVAL before Linux 4.0, EACCES under some sandboxes: it will not succeed later either
            return false;
        }
    }
}
