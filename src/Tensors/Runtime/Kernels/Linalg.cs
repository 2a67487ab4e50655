using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// The kernels of <c>kernels/linalg.cl</c> (see its header for the math and the tiling): one group of exactly
/// <see cref="GroupThreads"/> threads per <see cref="Tile"/> x <see cref="Tile"/> tile of C, the tiles numbered in one dimension.
/// </summary>
internal static class LinalgKernels
{
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

    private static readonly string[] Types = ["f32", "f16", "bf16"];

    private static readonly DeviceKernel[] MatMuls =
        [.. from a in Types from b in Types select new DeviceKernel(Source, $"matmul_{a}_{b}",
            [Buffer("a"), Buffer("b"), Buffer("c"), Int32("m"), Int32("n"), Int32("k"), UInt32("flags"), UInt32("alpha_bits"), UInt32("beta_bits")],
            groupThreads: GroupThreads)];

    private static readonly DeviceKernel[] Syrks =
        [.. from a in Types select new DeviceKernel(Source, $"syrk_{a}",
            [Buffer("a"), Buffer("c"), Int32("rows"), Int32("columns"), UInt32("alpha_bits"), UInt32("beta_bits")], groupThreads: GroupThreads)];

    /// <summary><c>matmul_&lt;a&gt;_&lt;b&gt;</c>.</summary>
    public static DeviceKernel MatMul(DType a, DType b) => MatMuls[3 * Index(a, nameof(a)) + Index(b, nameof(b))];

    /// <summary><c>syrk_&lt;a&gt;</c>.</summary>
    public static DeviceKernel Syrk(DType a) => Syrks[Index(a, nameof(a))];

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

    public static IEnumerable<DeviceKernel> All => [.. MatMuls, .. Syrks];

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

/// <summary>
/// Matrix products on a kernel backend: one launch per call. The products are explicit correctly rounded FMAs
/// (<c>FMA</c> of dialect.h), so no build option changes their rounding, and the header's error bound holds for any
/// input whose products stay out of the subnormal range: no subnormal support is required.
/// </summary>
internal abstract partial class KernelBackend
{
    public override void MatMul(in MatMulShape shape, float alpha, float beta)
    {
        int m = shape.M, n = shape.N, k = shape.K;
        ArgumentOutOfRangeException.ThrowIfNegative(m, "shape.M");
        ArgumentOutOfRangeException.ThrowIfNegative(n, "shape.N");
        ArgumentOutOfRangeException.ThrowIfNegative(k, "shape.K");
        DeviceKernel kernel = LinalgKernels.MatMul(shape.AType, shape.BType);
        CheckRange(shape.A, (long)m * k * shape.AType.SizeOf(), "shape.A");
        CheckRange(shape.B, (long)k * n * shape.BType.SizeOf(), "shape.B");
        CheckRange(shape.C, (long)m * n * sizeof(float), "shape.C");
        // The kernel reads A and B through restrict pointers while it writes C.
        if (ReferenceEquals(shape.C, shape.A) || ReferenceEquals(shape.C, shape.B))
            throw new ArgumentException("C is one of the inputs: the product would read what it overwrites", nameof(shape));
        Prepare(kernel);
        if (m == 0 || n == 0) return;
        Launch(kernel, LaunchShapes.Tiles(kernel, LinalgKernels.MatMulGroups(m, n)),
            shape.A, shape.B, shape.C, m, n, k, LinalgKernels.Flags(shape.TransposeA, shape.TransposeB), Bits(alpha), Bits(beta));
    }

    public override void Syrk(DeviceBuffer a, DType aType, int rows, int columns, DeviceBuffer c, float alpha, float beta)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        DeviceKernel kernel = LinalgKernels.Syrk(aType);
        CheckRange(a, (long)rows * columns * aType.SizeOf(), nameof(a));
        CheckRange(c, (long)columns * columns * sizeof(float), nameof(c));
        if (ReferenceEquals(a, c))
            throw new ArgumentException("c is a itself: the product would read what it overwrites", nameof(c));
        Prepare(kernel);
        if (columns == 0) return;
        Launch(kernel, LaunchShapes.Tiles(kernel, LinalgKernels.SyrkGroups(columns)), a, c, rows, columns, Bits(alpha), Bits(beta));
    }
}
