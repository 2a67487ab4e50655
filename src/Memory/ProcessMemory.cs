namespace NativeTensor.Memory;

/// <summary>The resident memory of this process as the operating system counts it (native buffers included, unlike the GC's figures).</summary>
public static class ProcessMemory
{
    /// <summary>Peak resident set size in bytes (Linux <c>VmHWM</c>), or null where the platform does not report it.</summary>
    public static long? PeakResidentBytes => Status("VmHWM:");

    /// <summary>Current resident set size in bytes (Linux <c>VmRSS</c>), or null where the platform does not report it.</summary>
    public static long? ResidentBytes => Status("VmRSS:");

    private static long? Status(string key)
    {
        if (!OperatingSystem.IsLinux()) return null;
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith(key, StringComparison.Ordinal)) continue;
            // "VmHWM:	  123456 kB"
            string[] parts = line[key.Length..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        return null;
    }
}
