namespace NativeTensor.Memory;

/// <summary>The resident memory of this process as the operating system counts it (native buffers included, unlike the GC's figures).</summary>
/// <remarks>The same figures as <see cref="MemoryBudget.ProcessRssBytes"/> and <see cref="MemoryBudget.PeakRssBytes"/>, without reading the rest of the budget.</remarks>
public static class ProcessMemory
{
    /// <summary>
    /// Peak resident set size in bytes over the process's life (Linux <c>VmHWM</c>, kept across the resets
    /// <see cref="MemoryBudget.Measure"/> makes), or null where the platform does not report it.
    /// </summary>
    /// <exception cref="InvalidDataException">/proc/self/status lacks or garbles VmRSS or VmHWM.</exception>
    public static long? PeakResidentBytes => OperatingSystem.IsLinux() ? PeakTracker.LifetimePeak(PeakTracker.Sample().Peak) : null;

    /// <summary>Current resident set size in bytes (Linux <c>VmRSS</c>), or null where the platform does not report it.</summary>
    /// <exception cref="InvalidDataException">/proc/self/status lacks or garbles VmRSS or VmHWM.</exception>
    public static long? ResidentBytes => OperatingSystem.IsLinux() ? PeakTracker.Sample().Rss : null;
}
