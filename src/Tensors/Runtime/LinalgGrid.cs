namespace NativeTensor.Runtime;

/// <summary>
/// The entry points and launch shape of <c>kernels/linalg.cl</c>, shared by the OpenCL and CUDA launches (see the
/// kernel's header for the tiling): one group of <see cref="GroupThreads"/> threads per <see cref="Tile"/> x
/// <see cref="Tile"/> tile of C, the tiles numbered in one dimension.
/// </summary>
internal static class LinalgGrid
{
    /// <summary>The kernel file.</summary>
    public const string Source = "linalg.cl";

    /// <summary>Rows and columns of C per group: NT_TILE in linalg.cl.</summary>
    public const int Tile = 64;

    /// <summary>Threads per group, exactly (the kernels declare it with GROUP_SIZE): NT_THREADS in linalg.cl.</summary>
    public const int GroupThreads = 256;

    /// <summary>
    /// The most groups one launch takes: CUDA's gridDim.x limit, which also keeps an OpenCL global size (groups times
    /// <see cref="GroupThreads"/>) below 2^39. Far past any C that fits a device (2^31 tiles are 2^43 elements).
    /// </summary>
    public const long MaxGroups = int.MaxValue;

    private static readonly string[] MatMulNames =
        [.. from a in new[] { "f32", "f16", "bf16" } from b in new[] { "f32", "f16", "bf16" } select $"matmul_{a}_{b}"];

    private static readonly string[] SyrkNames = ["syrk_f32", "syrk_f16", "syrk_bf16"];

    /// <summary><c>matmul_&lt;a&gt;_&lt;b&gt;</c>; names are built once.</summary>
    public static string MatMulKernel(DType a, DType b) => MatMulNames[3 * Index(a, nameof(a)) + Index(b, nameof(b))];

    /// <summary><c>syrk_&lt;a&gt;</c>.</summary>
    public static string SyrkKernel(DType a) => SyrkNames[Index(a, nameof(a))];

    /// <summary>The slot of a (a, b) kernel in a cache of nine, in <see cref="MatMulKernel"/>'s order.</summary>
    public static int MatMulSlot(DType a, DType b) => 3 * Index(a, nameof(a)) + Index(b, nameof(b));

    /// <summary>The slot of a Syrk kernel in a cache of three.</summary>
    public static int SyrkSlot(DType a) => Index(a, nameof(a));

    /// <summary>The kernel's <c>flags</c>: bit 0 transposes A, bit 1 transposes B.</summary>
    public static uint Flags(bool transposeA, bool transposeB) => (transposeA ? 1u : 0u) | (transposeB ? 2u : 0u);

    /// <summary>Groups of a matmul: every tile of the [m, n] C, row by row.</summary>
    public static long MatMulGroups(int m, int n) => Checked(Tiles(m) * Tiles(n), $"C [{m}, {n}]");

    /// <summary>Groups of a Syrk: the tiles of the lower block triangle of the [columns, columns] C, diagonal included.</summary>
    public static long SyrkGroups(int columns)
    {
        long t = Tiles(columns);
        return Checked(t * (t + 1) / 2, $"C [{columns}, {columns}]");
    }

    private static long Tiles(int extent) => ((long)extent + Tile - 1) / Tile;

    private static long Checked(long groups, string what) => groups <= MaxGroups
        ? groups
        : throw new ArgumentOutOfRangeException(nameof(groups), groups, $"{what} needs {groups} tiles of {Tile} x {Tile}: more than {MaxGroups} groups in one launch");

    private static int Index(DType dtype, string name) => dtype switch
    {
        DType.Float32 => 0,
        DType.Float16 => 1,
        DType.BFloat16 => 2,
        _ => throw new ArgumentException($"no matrix-product kernel for {dtype}: Float32, Float16 or BFloat16", name),
    };
}
