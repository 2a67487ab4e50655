using System.Numerics;

namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// A launch: <see cref="GroupsX"/> x <see cref="GroupsY"/> groups of <see cref="GroupThreads"/> threads along x (CUDA's
/// grid and block; OpenCL's global size is groups times threads along x, and groups along y).
/// </summary>
internal readonly record struct LaunchShape(long GroupsX, long GroupsY, int GroupThreads)
{
    public override string ToString() => $"grid {GroupsX} x {GroupsY}, block {GroupThreads}";
}

/// <summary>
/// What sizing a launch of one kernel needs to know about the device: the largest group the compiled kernel takes, the
/// smallest group worth launching, how many threads the device holds at once, and the width of its <c>size_t</c>.
/// </summary>
/// <param name="MaxGroupThreads">The kernel's own limit on this device (CUDA's MAX_THREADS_PER_BLOCK of the function,
/// OpenCL's CL_KERNEL_WORK_GROUP_SIZE within the device's maximum).</param>
/// <param name="MinGroupThreads">Fewer threads than this leave lanes idle: PoCL's vector width, two warps on CUDA (a block of
/// one warp caps a multiprocessor at half its threads, since it holds at most 32 blocks).</param>
/// <param name="ResidentThreads">Threads the device runs at once (multiprocessors or compute units times threads per each).</param>
/// <param name="AddressBits">The device's <c>size_t</c> width: a 32-bit OpenCL device caps a global size at 2^32 - 1.</param>
internal readonly record struct KernelLimits(int MaxGroupThreads, int MinGroupThreads, long ResidentThreads, int AddressBits = 64);

/// <summary>
/// The launch shapes of every kernel family, one policy each, for every device backend (see each kernel's header for
/// what the threads of a shape do). Pure functions of the work and the <see cref="KernelLimits"/>, so tests can pin them.
/// </summary>
internal static class LaunchShapes
{
    /// <summary>Threads per group at most: a multiple of every GPU's warp or wavefront, and within what any OpenCL C 1.2 device allows.</summary>
    public const int PreferredGroupThreads = 256;

    /// <summary>Each thread of a grid-stride kernel takes at least this many elements, so index arithmetic and group start-up are spread thin.</summary>
    public const long ElementsPerThread = 8;

    /// <summary>
    /// A grid-stride launch holds at most this many waves of resident threads: enough groups in flight to keep every
    /// multiprocessor's memory pipe full through the tail, few enough that each thread loops over many elements.
    /// </summary>
    public const long Waves = 4;

    /// <summary>gridDim.y's limit on every CUDA GPU, and so the most chunks or rows along y of any launch.</summary>
    public const int MaxGroupsY = 65535;

    /// <summary>Windows per strided launch (grid x); the kernel's <c>first</c> argument offsets later launches. Below gridDim.x's 2^31 - 1.</summary>
    public const long MaxStridedWindows = 1L << 30;

    /// <summary>Fewest and most units a window thread copies or converts (below: index arithmetic dominates; above: too few loads in flight).</summary>
    public const int FewestUnitsPerThread = 4, MostUnitsPerThread = 16;

    /// <summary>Groups along columns at most; past it each thread takes more columns (the kernels loop).</summary>
    public const long MaxColumnGroups = 1L << 14;

    /// <summary>
    /// A 1-D grid-stride launch over <paramref name="count"/> elements (conversions, unscale, optimizer steps, the
    /// compensated add): the largest power-of-two group within <see cref="PreferredGroupThreads"/> and the kernel's
    /// limit, enough groups that each thread has <see cref="ElementsPerThread"/>, at most <see cref="Waves"/> waves.
    /// </summary>
    public static LaunchShape GridStride(in KernelLimits limits, long count)
    {
        int threads = FloorPowerOfTwo(Math.Min(PreferredGroupThreads, limits.MaxGroupThreads));
        long perGroup = threads * ElementsPerThread;
        long most = Math.Max(1, Waves * limits.ResidentThreads / threads);
        long groups = Math.Clamp(CeilDiv(count, perGroup), 1, Math.Min(most, int.MaxValue));
        return FitAddressBits(limits, new LaunchShape(groups, 1, threads));
    }

    /// <summary>
    /// The windows kernels (<c>kernels/windows.cl</c>): one group column per window (x), <c>chunks</c> groups along
    /// each (y), and all their threads striding through the window's <paramref name="units"/> steps (a copy unit, or one
    /// converted element). A group has as many threads as give each about <see cref="ElementsPerThread"/> units (a power
    /// of two within the kernel's limits: a fixed 256 left most threads idle on short windows, 3-7 ms against 0.2-0.4 ms
    /// for 16384 windows of 84 bytes on PoCL). Chunks then fill about one wave of resident threads (a copy is
    /// bandwidth-bound only while enough loads are in flight, and a 256-window batch with one group per window fills a
    /// fifth of an H100), never leaving a thread fewer than <see cref="FewestUnitsPerThread"/> units nor, while y allows,
    /// more than <see cref="MostUnitsPerThread"/>.
    /// </summary>
    public static LaunchShape Windows(in KernelLimits limits, long windows, long units)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(units);
        int most = FloorPowerOfTwo(Math.Min(PreferredGroupThreads, limits.MaxGroupThreads));
        int fewest = Math.Min(most, Math.Max(1, limits.MinGroupThreads));
        int threads = (int)Math.Clamp((long)BitOperations.RoundUpToPowerOf2((ulong)CeilDiv(units, ElementsPerThread)), fewest, most);
        var shape = new LaunchShape(windows, 1, threads);
        shape = FitAddressBits(limits, shape);
        threads = shape.GroupThreads;
        long least = CeilDiv(units, (long)threads * MostUnitsPerThread);
        long cap = Math.Max(least, units / ((long)threads * FewestUnitsPerThread));
        long wave = CeilDiv(Math.Max(limits.ResidentThreads, threads), windows * threads);
        return shape with { GroupsY = Math.Clamp(Math.Clamp(wave, least, cap), 1, MaxGroupsY) };
    }

    /// <summary>
    /// The narrowest unit the copying windows kernels can fall back to for rows of <paramref name="rowBytes"/>: every
    /// address they form is a 256-aligned base plus a multiple of the row size, so the row's lowest set bit bounds it
    /// (capped at 16). A window of <c>b</c> bytes is at most <c>b / NarrowestUnit</c> units.
    /// </summary>
    public static int NarrowestUnit(long rowBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowBytes);
        return (int)Math.Min(16, rowBytes & -rowBytes);
    }

    /// <summary>
    /// Column kernels (<c>kernels/moments.cl</c>): threads along <paramref name="columns"/> (a power of two covering
    /// them, within the kernel's limits), at most <see cref="MaxColumnGroups"/> groups along x, and
    /// <paramref name="rows"/> (chunks or output rows, at most <see cref="MaxGroupsY"/>) along y.
    /// </summary>
    public static LaunchShape Columns(in KernelLimits limits, long columns, long rows)
    {
        int most = FloorPowerOfTwo(Math.Min(PreferredGroupThreads, limits.MaxGroupThreads));
        int fewest = Math.Min(most, Math.Max(1, limits.MinGroupThreads));
        int threads = (int)Math.Clamp((long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(1, columns)), fewest, most);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, MaxGroupsY);
        return new LaunchShape(Math.Clamp(CeilDiv(columns, threads), 1, MaxColumnGroups), rows, threads);
    }

    /// <summary>A 1-D launch of <paramref name="groups"/> groups of the kernel's exact <see cref="DeviceKernel.GroupThreads"/> (the tiles of linalg.cl).</summary>
    public static LaunchShape Tiles(DeviceKernel kernel, long groups) => new(groups, 1, kernel.GroupThreads);

    /// <summary>Halves the group until a 32-bit device's global size (groups times threads along x) fits its <c>size_t</c>.</summary>
    private static LaunchShape FitAddressBits(in KernelLimits limits, LaunchShape shape)
    {
        if (limits.AddressBits is <= 0 or >= 64) return shape;
        long most = (1L << limits.AddressBits) - 1;
        int threads = shape.GroupThreads;
        while (threads > 1 && shape.GroupsX * threads > most) threads /= 2;
        return shape with { GroupThreads = threads };
    }

    private static int FloorPowerOfTwo(int value) => 1 << BitOperations.Log2((uint)Math.Max(1, value));

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
