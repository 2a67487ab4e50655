using System.Globalization;

namespace NativeTensor.Memory;

/// <summary>
/// Parsing of the <c>/proc</c> files the budget reads: <c>/proc/meminfo</c> and <c>/proc/self/status</c>, both
/// <c>Key:   value [kB]</c> lines (proc(5)). Only the keys asked for are parsed, so a line a future kernel adds cannot
/// break the budget; a key that is asked for and missing or malformed is an <see cref="InvalidDataException"/> naming
/// the file, the line and the rule.
/// </summary>
internal static class ProcFiles
{
    public const string MemInfo = "/proc/meminfo";
    public const string Status = "/proc/self/status";

    /// <summary>The host's memory from <c>/proc/meminfo</c>.</summary>
    /// <remarks>
    /// MemAvailable (Linux 3.14+) is the kernel's own estimate of what can be allocated without swapping. Older kernels
    /// lack it; the fallback is MemFree + Buffers + Cached, the figure <c>free</c> printed before 3.14: it counts all
    /// of the page cache as reclaimable (some is dirty or mapped and is not), so it can overstate, and the budget says
    /// so with <see cref="MemoryBudget.AvailableIsEstimated"/>.
    /// </remarks>
    /// <exception cref="InvalidDataException">The file is missing, or MemTotal (or MemAvailable and its fallback keys) is missing or malformed.</exception>
    public static (long Total, long Available, bool Estimated) ReadMemInfo(Func<string, string?> readFile)
    {
        string text = readFile(MemInfo) ?? throw new InvalidDataException($"{MemInfo} could not be read");
        long total = Kilobytes(text, MemInfo, "MemTotal") ?? throw Missing(MemInfo, "MemTotal");
        if (Kilobytes(text, MemInfo, "MemAvailable") is long available) return (total, available, false);
        long free = Kilobytes(text, MemInfo, "MemFree") ?? throw Missing(MemInfo, "MemFree (needed without MemAvailable)");
        long buffers = Kilobytes(text, MemInfo, "Buffers") ?? throw Missing(MemInfo, "Buffers (needed without MemAvailable)");
        long cached = Kilobytes(text, MemInfo, "Cached") ?? throw Missing(MemInfo, "Cached (needed without MemAvailable)");
        // Each figure fits 64 bits (Kilobytes checks), their sum need not: a corrupt file is bad data, not an overflow.
        long fallback = free > long.MaxValue - buffers || free + buffers > long.MaxValue - cached
            ? throw new InvalidDataException($"{MemInfo}: MemFree {free} + Buffers {buffers} + Cached {cached} bytes is more than 64 bits hold")
            : free + buffers + cached;
        return (total, Math.Min(total, fallback), true);
    }

    /// <summary>This process's resident set now (VmRSS) and its high-water mark (VmHWM) from <c>/proc/self/status</c>.</summary>
    /// <exception cref="InvalidDataException">The file is missing, or VmRSS or VmHWM is missing or malformed.</exception>
    public static (long Rss, long Peak) ReadStatus(Func<string, string?> readFile)
    {
        string text = readFile(Status) ?? throw new InvalidDataException($"{Status} could not be read");
        long rss = Kilobytes(text, Status, "VmRSS") ?? throw Missing(Status, "VmRSS");
        long peak = Kilobytes(text, Status, "VmHWM") ?? throw Missing(Status, "VmHWM");
        // The kernel reports VmHWM as max(hiwater, current RSS), but both are read from counters that are summed lazily
        // per CPU; never let the peak read below the resident figure printed beside it.
        return (rss, Math.Max(rss, peak));
    }

    /// <summary>
    /// The value on the line <c>key</c><paramref name="separator"/><c>value</c> in bytes (a <c>kB</c> suffix multiplies
    /// by 1024), or null when no line has the key. /proc files separate with ':', cgroup memory.stat with ' '.
    /// </summary>
    /// <exception cref="InvalidDataException">The key's line does not hold one non-negative integer with an optional kB unit.</exception>
    public static long? Kilobytes(string text, string path, string key, char separator = ':')
    {
        int lineNumber = 0;
        foreach (ReadOnlySpan<char> line in text.AsSpan().EnumerateLines())
        {
            lineNumber++;
            if (!line.StartsWith(key, StringComparison.Ordinal) || line.Length == key.Length || line[key.Length] != separator) continue;
            ReadOnlySpan<char> rest = line[(key.Length + 1)..].Trim();
            long scale = 1;
            if (rest.EndsWith(" kB", StringComparison.Ordinal))
            {
                scale = 1024;
                rest = rest[..^3].TrimEnd();
            }
            if (!long.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
                throw new InvalidDataException($"{path} line {lineNumber}: '{line}' is not '{key}{separator}<non-negative integer>{(separator == ':' ? " [kB]" : "")}'");
            try
            {
                return checked(value * scale);
            }
            catch (OverflowException)
            {
                throw new InvalidDataException($"{path} line {lineNumber}: '{line}' is more bytes than 64 bits hold");
            }
        }
        return null;
    }

    private static InvalidDataException Missing(string path, string key) => new($"{path} has no '{key}:' line");
}
