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
    // Weak: a scope its owner forgot to dispose must not live, and be told of every later reset, for the process's life.
    private static readonly List<WeakReference<MemoryMeasurement>> OpenScopes = [];
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
            bool reset = ResetKeepingPeaks();
            (long rss, long peak) = Sample();
            OpenScopes.Add(new WeakReference<MemoryMeasurement>(scope));
            return (reset, rss, peak);
        }
    }

    /// <summary>Unregisters a scope and returns the final sample.</summary>
    public static (long Rss, long Peak) Close(MemoryMeasurement scope)
    {
        lock (Gate)
        {
            OpenScopes.RemoveAll(weak => !weak.TryGetTarget(out MemoryMeasurement? open) || ReferenceEquals(open, scope));
            return Sample();
        }
    }

    /// <summary>Scopes registered and not yet closed or collected (for tests).</summary>
    internal static int OpenScopeCount
    {
        get
        {
            lock (Gate) return OpenScopes.Count(weak => weak.TryGetTarget(out _));
        }
    }

    /// <summary>Whether this process may reset its high-water mark (Linux 4.0+ with a writable /proc): tried once, then remembered.</summary>
    public static bool CanReset
    {
        get
        {
            lock (Gate) return ResetKeepingPeaks();
        }
    }

    /// <summary>
    /// Resets the mark if the kernel lets us, first keeping the peak it erases for the lifetime figure and for every
    /// open scope. Call under <see cref="Gate"/>.
    /// </summary>
    private static bool ResetKeepingPeaks()
    {
        if (!OperatingSystem.IsLinux() || s_resetRefused) return false;
        long peak = Sample().Peak;
        if (!TryReset()) return false;
        s_peakBeforeResets = Math.Max(s_peakBeforeResets, peak);
        OpenScopes.RemoveAll(weak => !weak.TryGetTarget(out _));
        foreach (WeakReference<MemoryMeasurement> weak in OpenScopes)
            if (weak.TryGetTarget(out MemoryMeasurement? open)) open.NoteReset(peak);
        return true;
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
