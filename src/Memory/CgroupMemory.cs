namespace NativeTensor.Memory;

/// <summary>
/// The memory cgroup this process runs in, as <see cref="MemoryBudget"/> read it: what bounds the process in a
/// container, whatever the host's RAM.
/// </summary>
/// <param name="Version">1 (the v1 <c>memory</c> controller) or 2 (the unified hierarchy).</param>
/// <param name="Path">The cgroup path from <c>/proc/self/cgroup</c>, relative to its hierarchy's root.</param>
/// <param name="Directory">Where its files were read: the mount point joined with the path below the mount's root.</param>
/// <param name="LimitBytes">
/// The smallest hard limit (v2 <c>memory.max</c>, v1 <c>memory.limit_in_bytes</c> or <c>hierarchical_memory_limit</c>)
/// of the cgroup and its ancestors up to the mount, or null when none is set (v2 <c>max</c>, v1 values of 2^62 and up).
/// </param>
/// <param name="LimitDirectory">The directory whose limit is <paramref name="LimitBytes"/>, or null.</param>
/// <param name="HighBytes">
/// The smallest v2 <c>memory.high</c> along the same path, or null (v1, or <c>max</c>): past it the kernel throttles the
/// cgroup and reclaims hard, but does not kill. Not folded into the budget's totals; a run that wants full speed stays
/// under it too.
/// </param>
/// <param name="UsageBytes">The process's own cgroup's charge (v2 <c>memory.current</c>, v1 <c>memory.usage_in_bytes</c>), page cache included.</param>
/// <param name="InactiveFileBytes">Inactive page cache in that charge (<c>memory.stat</c> inactive_file; v1 total_inactive_file), which the kernel reclaims first.</param>
/// <param name="WorkingSetBytes">UsageBytes - InactiveFileBytes, at least 0: the kubelet's and cAdvisor's working set.</param>
/// <param name="HeadroomBytes">
/// The least of limit - working set over every directory on the path that has a limit (each ancestor's charge counts
/// its whole subtree, siblings included), at least 0; null when there is no limit.
/// </param>
public sealed record CgroupMemory(
    int Version,
    string Path,
    string Directory,
    long? LimitBytes,
    string? LimitDirectory,
    long? HighBytes,
    long UsageBytes,
    long InactiveFileBytes,
    long WorkingSetBytes,
    long? HeadroomBytes);
