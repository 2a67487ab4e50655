using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// MemoryBudget.Read on the captured and hand-made /proc and cgroup trees in tests/Memory/Fixtures/Budget (see its
/// README): exact figures for every cgroup layout, and a clear InvalidDataException for every malformed file.
/// </summary>
public sealed class MemoryBudgetParsingTests
{
    private const long KiB = 1024, GiB = 1L << 30;

    [Fact]
    public void This_machine_hybrid_v1_memory_controller_without_a_limit()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("this-machine"));
        Assert.Equal(24_684_084 * KiB, b.HostTotalBytes);
        Assert.Equal(24_002_384 * KiB, b.HostAvailableBytes);
        Assert.False(b.AvailableIsEstimated);
        Assert.Equal(b.HostTotalBytes, b.TotalBytes);
        Assert.Equal(b.HostAvailableBytes, b.AvailableBytes);
        Assert.Null(b.LimitBytes);
        Assert.Null(b.HighBytes);
        // The memory controller is on v1 here; the 0::/ line of the unified hierarchy must not be taken instead.
        CgroupMemory cg = Assert.IsType<CgroupMemory>(b.Cgroup);
        Assert.Equal(1, cg.Version);
        Assert.Equal("/process_api/650bca3e44d5889bba65494599f8d632", cg.Path);
        Assert.Equal("/sys/fs/cgroup/memory/process_api/650bca3e44d5889bba65494599f8d632", cg.Directory);
        Assert.Equal(9_535_488, cg.UsageBytes);
        Assert.Equal(966_656, cg.InactiveFileBytes);
        Assert.Equal(9_535_488 - 966_656, cg.WorkingSetBytes);
        Assert.Null(cg.HeadroomBytes);
        Assert.Equal(3224 * KiB, b.ProcessRssBytes);
        Assert.Equal(3224 * KiB, b.PeakRssBytes);
    }

    [Fact]
    public void V2_container_limit_bounds_total_and_available_is_limit_less_working_set()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("v2-limit"));
        Assert.Equal(64 * GiB, b.HostTotalBytes);
        Assert.Equal(60_000_000 * KiB, b.HostAvailableBytes);
        Assert.Equal(2 * GiB, b.LimitBytes);
        Assert.Equal(2 * GiB, b.TotalBytes);
        // working set = memory.current - inactive_file = 1 GiB - 256 MiB; available = 2 GiB - that.
        Assert.Equal(2 * GiB - (1 * GiB - 256L * 1024 * 1024), b.AvailableBytes);
        Assert.Null(b.HighBytes);
        CgroupMemory cg = b.Cgroup!;
        Assert.Equal((2, "/", "/sys/fs/cgroup", "/sys/fs/cgroup"), (cg.Version, cg.Path, cg.Directory, cg.LimitDirectory));
        Assert.Equal((1 * GiB, 256L << 20, 768L << 20), (cg.UsageBytes, cg.InactiveFileBytes, cg.WorkingSetBytes));
        Assert.Equal(800_000 * KiB, b.ProcessRssBytes);
        Assert.Equal(900_000 * KiB, b.PeakRssBytes);
    }

    [Fact]
    public void V2_max_is_no_limit()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("v2-max"));
        Assert.Null(b.LimitBytes);
        Assert.Null(b.Cgroup!.HeadroomBytes);
        Assert.Equal(64 * GiB, b.TotalBytes);
        Assert.Equal(60_000_000 * KiB, b.AvailableBytes);
        Assert.Equal(1 * GiB, b.Cgroup.UsageBytes);
    }

    [Fact]
    public void V2_nested_the_parents_smaller_limit_and_its_headroom_bind()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("v2-nested"));
        CgroupMemory cg = b.Cgroup!;
        Assert.Equal("/user.slice/app.service/worker", cg.Path);
        Assert.Equal("/sys/fs/cgroup/user.slice/app.service/worker", cg.Directory);
        Assert.Equal(1 * GiB, b.LimitBytes);
        Assert.Equal("/sys/fs/cgroup/user.slice/app.service", cg.LimitDirectory);
        Assert.Equal(1 * GiB, b.TotalBytes);
        // worker: 4 GiB - (600 MB - 50 MB); app.service: 1 GiB - (900 MB - 100 MB), the smaller.
        Assert.Equal(1 * GiB - 800_000_000, cg.HeadroomBytes);
        Assert.Equal(1 * GiB - 800_000_000, b.AvailableBytes);
        Assert.Equal(768L << 20, b.HighBytes);
        Assert.Equal((600_000_000L, 50_000_000L, 550_000_000L), (cg.UsageBytes, cg.InactiveFileBytes, cg.WorkingSetBytes));
    }

    [Fact]
    public void V1_container_whose_path_is_the_mount_root()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("v1-limit"));
        CgroupMemory cg = b.Cgroup!;
        Assert.Equal((1, "/docker/4f1c2a9e", "/sys/fs/cgroup/memory"), (cg.Version, cg.Path, cg.Directory));
        Assert.Equal(512L << 20, b.LimitBytes);
        Assert.Equal(512L << 20, b.TotalBytes);
        // v1 uses the hierarchical total_inactive_file (50 MB), not the cgroup's own inactive_file (40 MB).
        Assert.Equal(300_000_000 - 50_000_000, cg.WorkingSetBytes);
        Assert.Equal((512L << 20) - 250_000_000, b.AvailableBytes);
        Assert.Null(b.HighBytes);
    }

    [Fact]
    public void V1_hierarchical_limit_set_above_the_mount_is_taken_when_smaller()
    {
        // A container sees only its own cgroup; the kernel's hierarchical_memory_limit still carries an ancestor's limit.
        Func<string, string?> v1 = Fixture("v1-limit");
        MemoryBudget b = MemoryBudget.Read(p => p == "/sys/fs/cgroup/memory/memory.stat"
            ? v1(p)!.Replace("hierarchical_memory_limit 536870912", "hierarchical_memory_limit 268435456")
            : v1(p));
        Assert.Equal(256L << 20, b.LimitBytes);
        Assert.Equal("/sys/fs/cgroup/memory (hierarchical_memory_limit)", b.Cgroup!.LimitDirectory);
        Assert.Equal((256L << 20) - 250_000_000, b.AvailableBytes);
    }

    [Fact]
    public void V1_page_counter_max_is_no_limit()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("v1-unlimited"));
        Assert.Null(b.LimitBytes);
        Assert.Equal(32 * GiB, b.TotalBytes);
        Assert.Equal(20 * GiB, b.AvailableBytes);
        Assert.Equal(300_000_000, b.Cgroup!.UsageBytes);
    }

    [Fact]
    public void V1_combined_controllers_on_one_hierarchy_and_the_parents_limit()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("v1-combined"));
        CgroupMemory cg = b.Cgroup!;
        Assert.Equal((1, "/batch/job7", "/sys/fs/cgroup/cpu,memory/batch/job7"), (cg.Version, cg.Path, cg.Directory));
        Assert.Equal(3 * GiB, b.LimitBytes);
        Assert.Equal("/sys/fs/cgroup/cpu,memory/batch", cg.LimitDirectory);
        // job7: 4 GiB - 0.9 GB, batch: 3 GiB - (2 GB - 0.5 GB), job7's hierarchical limit: 3 GiB - 0.9 GB; least wins.
        Assert.Equal(3 * GiB - 1_500_000_000, b.AvailableBytes);
        Assert.Equal(900_000_000, cg.WorkingSetBytes);
    }

    [Fact]
    public void Kernel_without_MemAvailable_falls_back_to_free_plus_buffers_plus_cached()
    {
        MemoryBudget b = MemoryBudget.Read(Fixture("no-memavailable"));
        Assert.True(b.AvailableIsEstimated);
        Assert.Equal(8 * GiB, b.TotalBytes);
        Assert.Equal((1_000_000 + 200_000 + 3_000_000) * KiB, b.AvailableBytes);
        Assert.Null(b.Cgroup);   // no memory controller anywhere
        Assert.Null(b.LimitBytes);
    }

    [Fact]
    public void Missing_cgroup_files_mean_no_cgroup_but_missing_meminfo_or_status_is_refused()
    {
        Func<string, string?> full = Fixture("v2-limit");
        MemoryBudget noCgroup = MemoryBudget.Read(p => p == "/proc/self/cgroup" ? null : full(p));
        Assert.Null(noCgroup.Cgroup);
        Assert.Equal(64 * GiB, noCgroup.TotalBytes);
        Assert.Contains("/proc/meminfo", Assert.Throws<InvalidDataException>(() => MemoryBudget.Read(p => p == "/proc/meminfo" ? null : full(p))).Message);
        Assert.Contains("/proc/self/status", Assert.Throws<InvalidDataException>(() => MemoryBudget.Read(p => p == "/proc/self/status" ? null : full(p))).Message);
    }

    [Theory]
    [InlineData("limit-without-usage", null, "memory.current")]
    [InlineData("malformed/meminfo-garbage", "v2-limit", "no 'MemTotal:' line")]
    [InlineData("malformed/meminfo-truncated", "v2-limit", "line 1: 'MemTotal:'")]
    [InlineData("malformed/meminfo-bad-number", "v2-limit", "6710x864")]
    [InlineData("malformed/meminfo-overflow", "v2-limit", "64 bits")]
    [InlineData("malformed/meminfo-no-fallback", "v2-limit", "Buffers")]
    [InlineData("malformed/cgroup-truncated", "v2-limit", "/proc/self/cgroup line 1")]
    [InlineData("malformed/cgroup-garbage", "v2-limit", "hierarchy-id:controllers:/path")]
    [InlineData("malformed/mountinfo-truncated", "v2-limit", "/proc/self/mountinfo line 1")]
    [InlineData("malformed/mountinfo-bad-escape", "v2-limit", "octal escape")]
    [InlineData("malformed/memory-max-garbage", "v2-limit", "/sys/fs/cgroup/memory.max: 'lots' is not a byte count or 'max'")]
    [InlineData("malformed/memory-stat-bad", "v2-limit", "memory.stat line 2: 'inactive_file -5' is not 'inactive_file <non-negative integer>'")]
    [InlineData("malformed/status-missing-rss", "v2-limit", "no 'VmRSS:' line")]
    [InlineData("malformed/status-truncated", "v2-limit", "/proc/self/status line 3: 'VmRSS:")]
    public void Malformed_files_are_a_clear_InvalidDataException_naming_the_file(string fixture, string? over, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => MemoryBudget.Read(Fixture(fixture, over)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Mount_points_with_octal_escapes_are_decoded()
    {
        // proc(5): a space in a mount point is written \040.
        Func<string, string?> baseFixture = Fixture("v2-limit");
        string? Reader(string path) => path switch
        {
            "/proc/self/mountinfo" => "626 625 0:29 / /mnt/my\\040cgroups ro,nosuid - cgroup2 cgroup rw\n",
            "/mnt/my cgroups/memory.max" => "1048576\n",
            "/mnt/my cgroups/memory.current" => "0\n",
            _ => baseFixture(path),
        };
        MemoryBudget b = MemoryBudget.Read(Reader);
        Assert.Equal("/mnt/my cgroups", b.Cgroup!.Directory);
        Assert.Equal(1L << 20, b.LimitBytes);
    }

    [Fact]
    public void A_cgroup_outside_the_mounted_subtree_is_not_read()
    {
        Func<string, string?> v1 = Fixture("v1-limit");
        MemoryBudget b = MemoryBudget.Read(p => p == "/proc/self/cgroup" ? "12:memory:/elsewhere/x\n" : v1(p));
        Assert.Null(b.Cgroup);
        Assert.Equal(32 * GiB, b.TotalBytes);
    }

    [Fact]
    public void A_fallback_sum_past_64_bits_is_invalid_data_not_an_overflow()
    {
        // Each figure alone fits 64 bits once multiplied by 1024; MemFree + Buffers + Cached does not.
        const string meminfo = "MemTotal: 9007199254740991 kB\nMemFree: 9007199254740991 kB\nBuffers: 9007199254740991 kB\nCached: 1 kB\n";
        Func<string, string?> v2 = Fixture("v2-limit");
        var e = Assert.Throws<InvalidDataException>(() => MemoryBudget.Read(p => p == "/proc/meminfo" ? meminfo : v2(p)));
        Assert.Contains("/proc/meminfo", e.Message);
        Assert.Contains("64 bits", e.Message);
    }

    /// <summary>
    /// A reader over fixture <paramref name="name"/>, falling back to <paramref name="over"/> for files the fixture
    /// lacks (a malformed fixture holds only its one broken file). Absent files read as null, as on a host.
    /// </summary>
    internal static Func<string, string?> Fixture(string name, string? over = null) => path =>
        ReadIn(name, path) ?? (over is null ? null : ReadIn(over, path));

    private static readonly Lazy<string> Root = new(() => Fixtures.Folder(Path.Combine("Memory", "Fixtures", "Budget")));

    private static string? ReadIn(string name, string absolutePath)
    {
        string file = Path.Combine(Root.Value, name) + absolutePath;
        return File.Exists(file) ? File.ReadAllText(file) : null;
    }
}
