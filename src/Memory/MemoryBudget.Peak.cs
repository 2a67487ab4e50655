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
    // Weak: a scope the caller never disposes must not stay here for ever, nor be told of every later reset.
    private static readonly List<WeakReference<MemoryMeasurement>> OpenScopes = [];
    private static long s_peakBeforeResets;
    private static bool s_resetRefused;
    private static bool? s_canReset;
    private static string s_cannotResetReason = "";

    /// <summary>
    /// Whether this process may reset its high-water mark: Linux, and a write to <c>/proc/self/clear_refs</c> was
    /// accepted. Probed once (by a real reset, which <see cref="LifetimePeak"/> remembers like any other) and cached.
    /// </summary>
    public static bool CanReset(out string reason)
    {
        lock (Gate)
        {
            if (s_canReset is null)
            {
                if (!OperatingSystem.IsLinux())
                {
                    s_canReset = false;
                    s_cannotResetReason = "VmHWM and /proc/self/clear_refs are Linux's";
                }
                else
                {
                    (_, long peak) = Sample();
                    s_canReset = !s_resetRefused && TryReset();
                    if (s_canReset == true) Erased(peak);
                }
            }
            reason = s_cannotResetReason;
            return s_canReset.Value;
        }
    }

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
                Erased(peak);
                (rss, peak) = Sample();
            }
            else
            {
                OpenScopes.RemoveAll(w => !w.TryGetTarget(out _));   // prune here too, so a list never reset cannot grow
            }
            OpenScopes.Add(new WeakReference<MemoryMeasurement>(scope));
            return (reset, rss, peak);
        }
    }

    /// <summary>The live scopes open now (tests: that abandoned ones are pruned).</summary>
    internal static int OpenScopeCount
    {
        get
        {
            lock (Gate)
            {
                OpenScopes.RemoveAll(w => !w.TryGetTarget(out _));
                return OpenScopes.Count;
            }
        }
    }

    /// <summary>A reset erased <paramref name="peak"/>: the lifetime and every live open scope keep it; dead scopes are dropped. Under <see cref="Gate"/>.</summary>
    private static void Erased(long peak)
    {
        s_peakBeforeResets = Math.Max(s_peakBeforeResets, peak);
        OpenScopes.RemoveAll(w =>
        {
            if (!w.TryGetTarget(out MemoryMeasurement? open)) return true;
            open.NoteReset(peak);
            return false;
        });
    }

    /// <summary>Unregisters a scope and returns the final sample.</summary>
    public static (long Rss, long Peak) Close(MemoryMeasurement scope)
    {
        lock (Gate)
        {
            OpenScopes.RemoveAll(w => !w.TryGetTarget(out MemoryMeasurement? open) || ReferenceEquals(open, scope));
            return Sample();
        }
    }

    private static bool TryReset()
    {
        try
        {
            // "5" resets the peak RSS (VmHWM) to the current RSS (Documentation/filesystems/proc.rst, "clear_refs").
            File.WriteAllText(ClearRefs, "5");
            s_canReset ??= true;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            s_resetRefused = true;   // EINVAL before Linux 4.0, EACCES under some sandboxes: it will not succeed later either
            s_canReset = false;
            s_cannotResetReason = $"writing 5 to {ClearRefs} was refused ({e.GetType().Name}: {e.Message}); Linux {Environment.OSVersion.Version}";
            return false;
        }
    }
}
