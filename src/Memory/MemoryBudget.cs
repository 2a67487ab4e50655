using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace NativeTensor.Memory;

/// <summary>
/// How much memory this process may use, read from the operating system at one moment: the host's RAM, the container's
/// cgroup limit (whichever is smaller), this process's resident set, and on request each device's memory.
/// </summary>
/// <remarks>
/// <para>Linux: <see cref="HostTotalBytes"/> and <see cref="HostAvailableBytes"/> come from <c>/proc/meminfo</c>,
/// <see cref="Cgroup"/> from <c>/proc/self/cgroup</c>, <c>/proc/self/mountinfo</c> and the cgroup's files (v1 and v2,
/// ancestors included; see <see cref="CgroupMemory"/>), the resident set from <c>/proc/self/status</c>.</para>
/// <para>Other systems: <see cref="TotalBytes"/> is the GC's <see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>
/// (which honours Windows job-object limits), <see cref="AvailableBytes"/> is that less the memory load the GC saw at
/// its last collection (stale between collections), <see cref="LimitBytes"/>, <see cref="HighBytes"/> and
/// <see cref="Cgroup"/> are null, the resident set is <see cref="Process.WorkingSet64"/> and its peak
/// <see cref="Process.PeakWorkingSet64"/>.</para>
/// </remarks>
public sealed class MemoryBudget
{
    internal MemoryBudget(long hostTotal, long hostAvailable, bool estimated, CgroupMemory? cgroup, long rss, long peak)
    {
        HostTotalBytes = hostTotal;
        HostAvailableBytes = hostAvailable;
        AvailableIsEstimated = estimated;
        Cgroup = cgroup;
        ProcessRssBytes = rss;
        PeakRssBytes = Math.Max(rss, peak);
    }

    /// <summary>The memory this process may use in all: <c>min(HostTotalBytes, LimitBytes)</c>.</summary>
    public long TotalBytes => Math.Min(HostTotalBytes, LimitBytes ?? long.MaxValue);

    /// <summary>
    /// What can still be allocated without swapping or hitting the container's limit:
    /// <c>min(HostAvailableBytes, Cgroup.HeadroomBytes)</c>, where the headroom is limit - (usage - inactive file
    /// cache), the least over the cgroup and its ancestors (<see cref="CgroupMemory.HeadroomBytes"/>). Never more than
    /// <see cref="TotalBytes"/>.
    /// </summary>
    public long AvailableBytes => Math.Min(TotalBytes, Math.Min(HostAvailableBytes, Cgroup?.HeadroomBytes ?? long.MaxValue));

    /// <summary>The cgroup's hard limit in bytes (the smallest along its path), or null when none is set.</summary>
    public long? LimitBytes => Cgroup?.LimitBytes;

    /// <summary>The cgroup v2 throttling threshold <c>memory.high</c> (smallest along the path), or null; reported, not folded into the totals.</summary>
    public long? HighBytes => Cgroup?.HighBytes;

    /// <summary>This process's resident set now (Linux <c>VmRSS</c>): native buffers and mapped pages included, unlike the GC's figures.</summary>
    public long ProcessRssBytes { get; }

    /// <summary>
    /// The highest resident set of this process's life (Linux <c>VmHWM</c>). <see cref="Measure"/> resets the kernel's
    /// mark, so the value read just before each reset is kept and this reports the larger: resets made through this
    /// library do not lower it (one made by other code writing <c>/proc/self/clear_refs</c> does). A peak another thread
    /// reaches in the microseconds between that read and the reset is lost (see <see cref="MemoryMeasurement"/>).
    /// </summary>
    public long PeakRssBytes { get; }

    /// <summary>The host's RAM (Linux <c>MemTotal</c>).</summary>
    public long HostTotalBytes { get; }

    /// <summary>The host's allocatable memory (Linux <c>MemAvailable</c>, or MemFree + Buffers + Cached on kernels before 3.14).</summary>
    public long HostAvailableBytes { get; }

    /// <summary>
    /// True when <see cref="HostAvailableBytes"/> is not the kernel's MemAvailable: the MemFree + Buffers + Cached
    /// fallback of kernels before 3.14, which can overstate, or off Linux the GC's figure from its last collection.
    /// </summary>
    public bool AvailableIsEstimated { get; }

    /// <summary>The memory cgroup this process runs in, or null when there is none to read (or not on Linux).</summary>
    public CgroupMemory? Cgroup { get; }

    /// <summary>Reads the budget now. Cheap (a few small file reads); starts no device runtime.</summary>
    /// <exception cref="InvalidDataException">A <c>/proc</c> or cgroup file is missing a figure it must hold or is malformed; the message names the file and line.</exception>
    public static MemoryBudget Current()
    {
        if (!OperatingSystem.IsLinux()) return NonLinux();
        MemoryBudget read = Read(ReadSystemFile);
        long peak = PeakTracker.LifetimePeak(read.PeakRssBytes);
        return new MemoryBudget(read.HostTotalBytes, read.HostAvailableBytes, read.AvailableIsEstimated, read.Cgroup, read.ProcessRssBytes, peak);
    }

    /// <summary>
    /// The memory of every device in <see cref="Device.Available"/>: the CPU (from <see cref="Current"/>), then each
    /// OpenCL, CUDA and ILGPU device. Separate from <see cref="Current"/> because it discovers the device runtimes, which loads
    /// their drivers and may create contexts.
    /// </summary>
    /// <exception cref="NativeTensorException">A driver failed to report (the message carries its error name).</exception>
    public static IReadOnlyList<DeviceMemory> Devices()
    {
        MemoryBudget host = Current();
        return Device.Available.Select(d => d.Kind == DeviceKind.Cpu
            ? new DeviceMemory(d, host.TotalBytes, host.AvailableBytes)
            : new DeviceMemory(d, d.TotalMemory, d.FreeMemory)).ToArray();
    }

    /// <summary>
    /// Starts measuring the peak resident set of a block of work: <c>using var scope = MemoryBudget.Measure();</c> ...
    /// <c>scope.PeakRssDeltaBytes</c>. See <see cref="MemoryMeasurement"/> for how it is exact and what it resets.
    /// </summary>
    public static MemoryMeasurement Measure() => new();

    /// <summary>Reads every figure through <paramref name="readFile"/> (absolute path to text, null when absent): the seam tests feed captured files through.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Current"/>.</exception>
    internal static MemoryBudget Read(Func<string, string?> readFile)
    {
        (long total, long available, bool estimated) = ProcFiles.ReadMemInfo(readFile);
        CgroupMemory? cgroup = CgroupFiles.Read(readFile);
        (long rss, long peak) = ProcFiles.ReadStatus(readFile);
        return new MemoryBudget(total, available, estimated, cgroup, rss, peak);
    }

    /// <summary>The file's text, or null when it does not exist or may not be read (a cgroup file hidden from a container).</summary>
    internal static string? ReadSystemFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static MemoryBudget NonLinux()
    {
        GCMemoryInfo gc = GC.GetGCMemoryInfo();
        using Process self = Process.GetCurrentProcess();
        long total = gc.TotalAvailableMemoryBytes;
        return new MemoryBudget(total, Math.Max(0, total - gc.MemoryLoadBytes), true, null, self.WorkingSet64, self.PeakWorkingSet64);
    }

    /// <summary>One line per figure, with where it came from.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        void Line(string name, long? bytes, string source) =>
            text.AppendLine(CultureInfo.InvariantCulture, $"{name,-12} {(bytes is long b ? MemoryEstimate.Bytes(b) : "none"),14}  {source}");
        Line("total", TotalBytes, "min(host total, cgroup limit)");
        Line("available", AvailableBytes, "min(host available, cgroup limit - working set)");
        Line("host total", HostTotalBytes, "MemTotal");
        Line("host avail", HostAvailableBytes, AvailableIsEstimated ? "MemFree + Buffers + Cached (no MemAvailable)" : "MemAvailable");
        Line("limit", LimitBytes, Cgroup is null ? "no memory cgroup" : $"cgroup v{Cgroup.Version} {Cgroup.LimitDirectory ?? Cgroup.Directory}");
        Line("high", HighBytes, "cgroup v2 memory.high (throttling)");
        if (Cgroup is not null) Line("working set", Cgroup.WorkingSetBytes, $"usage {Cgroup.UsageBytes:N0} - inactive file {Cgroup.InactiveFileBytes:N0}");
        Line("rss", ProcessRssBytes, "VmRSS");
        Line("peak rss", PeakRssBytes, "VmHWM (lifetime)");
        return text.ToString();
    }
}
