using System.Runtime.InteropServices;
using NativeTensor.Memory;

namespace NativeTensor.Tests.Memory;

/// <summary>MemoryBudget.Current, Devices and Measure on the machine running the tests.</summary>
public sealed class MemoryBudgetTests
{
    private const long MiB = 1 << 20;

    /// <summary>
    /// How far a measured peak may sit from the bytes the block touched. Linux sums resident pages per CPU and folds
    /// them in batches (percpu_counter batch max(32, 2 x CPUs) pages per CPU: 32 pages x 16 CPUs = 2 MiB here at most),
    /// and the runtime itself may allocate during the block (JIT of the lambda, GC bookkeeping; the figures we
    /// measured were under 1 MiB). Bound: 8 MiB, 3% of the 256 MiB blocks.
    /// </summary>
    private const long MeasureSlackBytes = 8 * MiB;

    [Fact]
    public void Current_is_consistent_on_this_machine()
    {
        MemoryBudget b = MemoryBudget.Current();
        Assert.InRange(b.TotalBytes, 1, b.HostTotalBytes);
        Assert.InRange(b.AvailableBytes, 0, b.TotalBytes);
        Assert.True(b.AvailableBytes <= b.HostAvailableBytes);
        Assert.InRange(b.HostAvailableBytes, 0, b.HostTotalBytes);
        Assert.InRange(b.ProcessRssBytes, 1, b.PeakRssBytes);
        Assert.True(b.ProcessRssBytes < b.TotalBytes + b.TotalBytes, $"RSS {b.ProcessRssBytes} against total {b.TotalBytes}");
        if (b.LimitBytes is long limit) Assert.True(b.TotalBytes <= limit);
        if (b.Cgroup is { } cg)
        {
            Assert.InRange(cg.WorkingSetBytes, 0, cg.UsageBytes);
            Assert.Equal(Math.Max(0, cg.UsageBytes - cg.InactiveFileBytes), cg.WorkingSetBytes);
        }
        Assert.Contains("available", b.ToString());
    }

    [SkippableFact]
    public void Total_agrees_with_the_runtimes_own_reading_of_meminfo_and_the_cgroup()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the runtime reads /proc and cgroups only on Linux");
        Skip.If(Environment.GetEnvironmentVariable("DOTNET_GCHeapHardLimit") is not null, "a GC heap hard limit replaces the runtime's figure");
        // The .NET runtime computes its physical memory limit independently (src/coreclr/gc/unix/cgroup.cpp): the same
        // min(physical pages, cgroup limit) must come out.
        Assert.Equal(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, MemoryBudget.Current().TotalBytes);
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

    private static void SkipUnlessPeakCanBeReset()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "VmHWM and /proc/self/clear_refs are Linux's");
        Skip.If(Environment.OSVersion.Version < new Version(4, 0), $"clear_refs 5 needs Linux 4.0, this is {Environment.OSVersion.Version}");
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
