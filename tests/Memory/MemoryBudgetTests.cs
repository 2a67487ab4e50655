using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Memory;

/// <summary>MemoryBudget.Current, Devices and Measure on the machine running the tests.</summary>
public sealed class MemoryBudgetTests
{
    private const long MiB = 1 << 20, KiB = 1024;

    /// <summary>See <see cref="Tolerances.ResidentSetSlackBytes"/>: per-CPU counter batches plus the runtime's own allocation.</summary>
    private static readonly long MeasureSlackBytes = Tolerances.ResidentSetSlackBytes;

    [Fact]
    public void Current_agrees_with_meminfo_and_status_read_here_and_rss_rises_by_a_touched_block()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc/meminfo and /proc/self/status are Linux's");
        long availableBefore = ProcKilobytes("/proc/meminfo", "MemAvailable");
        long rssBefore = ProcKilobytes("/proc/self/status", "VmRSS");
        MemoryBudget b = MemoryBudget.Current();
        long availableAfter = ProcKilobytes("/proc/meminfo", "MemAvailable");
        long rssAfter = ProcKilobytes("/proc/self/status", "VmRSS");

        Assert.Equal(ProcKilobytes("/proc/meminfo", "MemTotal"), b.HostTotalBytes);   // fixed for the boot
        Assert.InRange(b.HostAvailableBytes,
            Math.Min(availableBefore, availableAfter) - Tolerances.HostAvailableDriftBytes,
            Math.Max(availableBefore, availableAfter) + Tolerances.HostAvailableDriftBytes);
        Assert.InRange(b.ProcessRssBytes, Math.Min(rssBefore, rssAfter) - MeasureSlackBytes, Math.Max(rssBefore, rssAfter) + MeasureSlackBytes);
        // The library's lifetime peak is never below the kernel's current mark (resets only lower the kernel's).
        Assert.True(b.PeakRssBytes >= ProcKilobytes("/proc/self/status", "VmHWM") - MeasureSlackBytes);

        // Holding a touched 256 MiB block raises the resident set by about that much, and the peak with it.
        unsafe
        {
            long block = 256 * MiB;
            byte* p = (byte*)NativeMemory.Alloc((nuint)block);
            try
            {
                new Span<byte>(p, checked((int)block)).Fill(1);
                MemoryBudget held = MemoryBudget.Current();
                Assert.InRange(held.ProcessRssBytes - b.ProcessRssBytes, block - MeasureSlackBytes, block + MeasureSlackBytes);
                Assert.True(held.PeakRssBytes >= b.ProcessRssBytes + block - MeasureSlackBytes, $"peak {held.PeakRssBytes} holding {block} from {b.ProcessRssBytes}");
            }
            finally
            {
                NativeMemory.Free(p);
            }
        }
        Assert.Contains("available", b.ToString());
    }

    [Fact]
    public void Total_agrees_with_the_runtimes_own_reading_of_meminfo_and_the_cgroup_when_nothing_limits_the_heap()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "the runtime reads /proc and cgroups only on Linux");
        MemoryBudget b = MemoryBudget.Current();
        // Under a cgroup limit the runtime reports its GC heap hard limit (75% of the limit by default), and a configured
        // hard limit replaces the figure anywhere: then the two need not agree (the next test bounds it).
        Assert.SkipWhen(b.LimitBytes is not null, $"a cgroup limit ({b.LimitBytes} B) makes the runtime report its heap hard limit instead");
        string? knob = HeapHardLimitConfigured();
        Assert.SkipWhen(knob is not null, $"a GC heap hard limit is configured ({knob})");
        // The .NET runtime computes its physical memory limit independently (src/coreclr/gc/unix/cgroup.cpp): the same
        // min(physical pages, cgroup limit) must come out.
        Assert.Equal(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, b.TotalBytes);
    }

    [Fact]
    public void The_runtimes_available_memory_never_exceeds_total()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "off Linux TotalBytes is the runtime's figure itself");
        // A heap hard limit (a cgroup's default 75%, or configured) is at most what the process may use; without one it is equal.
        Assert.InRange(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, 1, MemoryBudget.Current().TotalBytes);
    }

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
            if (d.Device.Kind is DeviceKind.OpenCl or DeviceKind.Ilgpu) Assert.Null(d.FreeBytes);   // no free-memory query
            else Assert.InRange(d.FreeBytes!.Value, 0, d.TotalBytes);
        }
    }

    [Fact]
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

    [Fact]
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

    [Fact]
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
    public void A_scope_never_disposed_is_not_kept_alive_and_is_pruned()
    {
        int before = PeakTracker.OpenScopeCount;
        WeakReference<MemoryMeasurement>[] abandoned = Abandon(8);
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.All(abandoned, w => Assert.False(w.TryGetTarget(out _), "the tracker holds an abandoned scope"));
        using (MemoryBudget.Measure()) Assert.Equal(before + 1, PeakTracker.OpenScopeCount);   // dead entries pruned
        Assert.Equal(before, PeakTracker.OpenScopeCount);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference<MemoryMeasurement>[] Abandon(int count) =>
        Enumerable.Range(0, count).Select(_ => new WeakReference<MemoryMeasurement>(MemoryBudget.Measure())).ToArray();

    private static void SkipUnlessPeakCanBeReset() => Assert.SkipUnless(PeakTracker.CanReset(out string reason), reason);

    /// <summary>A <c>Key: value kB</c> line of a /proc file in bytes, parsed here apart from the library's parser.</summary>
    private static long ProcKilobytes(string path, string key)
    {
        string line = File.ReadAllLines(path).Single(l => l.StartsWith(key + ":", StringComparison.Ordinal));
        string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("kB", fields[^1]);
        return long.Parse(fields[1], CultureInfo.InvariantCulture) * KiB;
    }

    /// <summary>The GC heap hard limit setting in force, or null: environment, runtimeconfig, or the GC's own report.</summary>
    private static string? HeapHardLimitConfigured()
    {
        foreach (string prefix in new[] { "DOTNET_", "COMPlus_" })
            foreach (string name in new[] { "GCHeapHardLimit", "GCHeapHardLimitPercent", "GCHeapHardLimitSOH", "GCHeapHardLimitLOH", "GCHeapHardLimitPOH" })
                if (Environment.GetEnvironmentVariable(prefix + name) is string value) return $"{prefix}{name}={value}";
        foreach (string name in new[] { "System.GC.HeapHardLimit", "System.GC.HeapHardLimitPercent" })
            if (AppContext.GetData(name) is { } value) return $"{name}={value}";
        foreach ((string name, object value) in GC.GetConfigurationVariables())
            if (name.Contains("HeapHardLimit", StringComparison.OrdinalIgnoreCase) && value is IConvertible c && c.ToInt64(CultureInfo.InvariantCulture) != 0)
                return $"{name}={value}";
        return null;
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
