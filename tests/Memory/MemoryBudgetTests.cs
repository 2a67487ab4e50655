using System.Runtime.InteropServices;
using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Memory;

/// <summary>MemoryBudget.Current, Devices and Measure on the machine running the tests.</summary>
public sealed class MemoryBudgetTests
{
    private const long MiB = 1 << 20;

    private const long MeasureSlackBytes = Tolerances.ResidentSetSlackBytes;

    [SkippableFact]
    public void Current_agrees_with_the_kernels_own_figures_read_independently()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "/proc/meminfo and /proc/self/status are Linux's");
        long memTotal = Kilobytes("/proc/meminfo", "MemTotal:"), memAvailable = Kilobytes("/proc/meminfo", "MemAvailable:");
        MemoryBudget b = MemoryBudget.Current();
        Assert.Equal(memTotal, b.HostTotalBytes);
        // MemAvailable moves between two readings: as much as the rest of the machine allocates meanwhile.
        Assert.InRange(b.HostAvailableBytes, memAvailable - Tolerances.HostAvailableDriftBytes, memAvailable + Tolerances.HostAvailableDriftBytes);
        Assert.Equal(b.LimitBytes is long limit ? Math.Min(memTotal, limit) : memTotal, b.TotalBytes);
        Assert.True(b.AvailableBytes <= b.HostAvailableBytes);

        // The process's own figures follow a block of memory this test touches.
        long rssBefore = Kilobytes("/proc/self/status", "VmRSS:");
        unsafe
        {
            byte* block = (byte*)NativeMemory.Alloc((nuint)(128 * MiB));
            try
            {
                new Span<byte>(block, (int)(128 * MiB)).Fill(1);
                MemoryBudget during = MemoryBudget.Current();
                Assert.InRange(during.ProcessRssBytes, rssBefore + 128 * MiB - MeasureSlackBytes, rssBefore + 128 * MiB + MeasureSlackBytes);
                Assert.True(during.PeakRssBytes >= during.ProcessRssBytes);
            }
            finally
            {
                NativeMemory.Free(block);
            }
        }
        if (b.Cgroup is { } cg) Assert.Equal(Math.Max(0, cg.UsageBytes - cg.InactiveFileBytes), cg.WorkingSetBytes);
        Assert.Contains("available", b.ToString());
    }

    /// <summary>A "Key:   123 kB" line of a /proc file, in bytes: read here, apart from the product's parser.</summary>
    private static long Kilobytes(string path, string key)
    {
        string line = File.ReadLines(path).First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    [SkippableFact]
    public void Total_agrees_with_the_runtimes_own_reading_of_meminfo_and_the_cgroup()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the runtime reads /proc and cgroups only on Linux");
        MemoryBudget b = MemoryBudget.Current();
        long runtime = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        bool heapLimit = GCHeapHardLimitConfigured();
        if (b.LimitBytes is null && !heapLimit)
        {
            // The .NET runtime computes the same min(physical pages, cgroup limit) independently (src/coreclr/gc/unix/cgroup.cpp).
            Assert.Equal(runtime, b.TotalBytes);
            return;
        }
        // Under a container limit (or a configured one) the runtime reports its GC heap hard limit instead: by default
        // 75% of the container's limit, so only the bound holds.
        Assert.True(runtime <= b.TotalBytes, $"the runtime's {runtime} bytes against the budget's {b.TotalBytes}");
    }

    private static bool GCHeapHardLimitConfigured() =>
        new[] { "DOTNET_GCHeapHardLimit", "DOTNET_GCHeapHardLimitPercent", "COMPlus_GCHeapHardLimit", "COMPlus_GCHeapHardLimitPercent" }
            .Any(v => Environment.GetEnvironmentVariable(v) is not null)
        || AppContext.GetData("GCHeapHardLimit") is not null || AppContext.GetData("GCHeapHardLimitPercent") is not null;

    [Fact]
    public void Devices_list_every_available_device_and_the_cpu_from_the_budget()
    {
        IReadOnlyList<DeviceMemory> devices = MemoryBudget.Devices();
        Assert.Equal(Device.Available, devices.Select(d => d.Device));
        MemoryBudget host = MemoryBudget.Current();
        Assert.Equal(host.TotalBytes, devices[0].TotalBytes);
        Assert.InRange(devices[0].FreeBytes!.Value, 0, host.TotalBytes);
        foreach (DeviceMemory d in devices.Skip(1))
        {
            Assert.True(d.TotalBytes > 0, $"{d.Device.Spec} reports {d.TotalBytes} bytes");
            if (d.Device.Kind == DeviceKind.OpenCl) Assert.Null(d.FreeBytes);
            else Assert.InRange(d.FreeBytes!.Value, 0, d.TotalBytes);
        }
    }

    [SkippableFact]
    public void Measure_reports_the_peak_of_touching_256_MiB_even_after_it_is_freed()
    {
        SkipUnlessPeakCanBeReset();
        MemoryMeasurement scope;
        using (scope = MemoryBudget.Measure())
        {
            Touch(256 * MiB);
        }
        Assert.True(scope.PeakIsExact);
        Assert.InRange(scope.PeakRssDeltaBytes, 256 * MiB - MeasureSlackBytes, 256 * MiB + MeasureSlackBytes);
        Assert.InRange(scope.EndRssBytes, 0, scope.PeakRssBytes);
        Assert.True(scope.EndRssBytes < scope.StartRssBytes + 256 * MiB - MeasureSlackBytes, "the block's memory was freed");
        Assert.True(scope.Elapsed > TimeSpan.Zero);
        long frozen = scope.PeakRssBytes;
        Touch(64 * MiB);
        Assert.Equal(frozen, scope.PeakRssBytes);   // fixed at Dispose
    }

    [SkippableFact]
    public void Measure_around_nothing_reports_near_zero_after_a_larger_earlier_peak_and_keeps_the_lifetime_peak()
    {
        SkipUnlessPeakCanBeReset();
        long before = ProcessMemory.ResidentBytes!.Value;
        Touch(384 * MiB);                          // an earlier peak well above what follows
        long lifetime = MemoryBudget.Current().PeakRssBytes;
        Assert.True(lifetime >= before + 384 * MiB - MeasureSlackBytes, $"peak {lifetime} after touching 384 MiB from {before}");

        MemoryMeasurement scope;
        using (scope = MemoryBudget.Measure()) { }
        Assert.True(scope.PeakIsExact);
        Assert.InRange(scope.PeakRssDeltaBytes, 0, MeasureSlackBytes);

        // The reset lowered the kernel's VmHWM; the library still reports the lifetime peak.
        Assert.True(MemoryBudget.Current().PeakRssBytes >= lifetime);
        Assert.True(ProcessMemory.PeakResidentBytes >= lifetime);
    }

    [SkippableFact]
    public void An_outer_scope_keeps_the_peak_an_inner_scope_reset_away()
    {
        SkipUnlessPeakCanBeReset();
        using MemoryMeasurement outer = MemoryBudget.Measure();
        MemoryMeasurement first, second;
        using (first = MemoryBudget.Measure()) Touch(256 * MiB);
        using (second = MemoryBudget.Measure()) { }   // resets VmHWM below the first block's peak
        Assert.InRange(first.PeakRssDeltaBytes, 256 * MiB - MeasureSlackBytes, 256 * MiB + MeasureSlackBytes);
        Assert.InRange(second.PeakRssDeltaBytes, 0, MeasureSlackBytes);
        // Read before the outer scope is disposed: the figures so far.
        Assert.True(outer.PeakRssDeltaBytes >= 256 * MiB - MeasureSlackBytes, $"outer saw {outer.PeakRssDeltaBytes} bytes");
    }

    [Fact]
    public void A_scope_never_disposed_is_not_kept_alive_by_the_tracker()
    {
        int open = PeakTracker.OpenScopeCount;
        Forget();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using (MemoryBudget.Measure()) Assert.Equal(open + 1, PeakTracker.OpenScopeCount);
        Assert.Equal(open, PeakTracker.OpenScopeCount);

        static void Forget() => _ = MemoryBudget.Measure();
    }

    private static void SkipUnlessPeakCanBeReset()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "VmHWM and /proc/self/clear_refs are Linux's");
        Skip.IfNot(PeakTracker.CanReset, $"writing 5 to /proc/self/clear_refs was refused (Linux {Environment.OSVersion.Version}; 4.0+ and a writable /proc are needed)");
    }

    /// <summary>Allocates native memory, writes every page, frees it: the resident set rises by the bytes and falls back.</summary>
    private static unsafe void Touch(long bytes)
    {
        byte* p = (byte*)NativeMemory.Alloc((nuint)bytes);
        try
        {
            new Span<byte>(p, checked((int)bytes)).Fill(1);
        }
        finally
        {
            NativeMemory.Free(p);
        }
    }
}
