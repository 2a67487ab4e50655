namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The launches of <c>kernels/linalg.cl</c> (see its header for the math, the tiling, the launch shape and the
/// bounds): one group of <see cref="LinalgGrid.GroupThreads"/> work-items per 64 x 64 tile of C, the groups in one
/// dimension, for every tile of C (MatMul) or for the tiles of its lower block triangle (Syrk).
/// </summary>
/// <remarks>
/// Built with the default <see cref="BuildOptions"/>: the products are explicit <c>fma</c> calls, correctly rounded
/// on every conforming device, so no option changes their rounding; the error bound in the header holds for any input
/// whose products stay out of the subnormal range, which is why no <c>CL_FP_DENORM</c> is required here.
/// </remarks>
internal sealed unsafe partial class OpenClBackend
{
    /// <summary>matmul_* by <see cref="LinalgGrid.MatMulSlot"/>; filled on first use.</summary>
    private readonly OpenClKernel?[] _matMul = new OpenClKernel?[9];

    /// <summary>syrk_* by <see cref="LinalgGrid.SyrkSlot"/>; filled on first use.</summary>
    private readonly OpenClKernel?[] _syrk = new OpenClKernel?[3];

    /// <inheritdoc/>
    public override void MatMul(in MatMulShape shape, float alpha, float beta)
    {
        int m = shape.M, n = shape.N, k = shape.K;
        ArgumentOutOfRangeException.ThrowIfNegative(m, "shape.M");
        ArgumentOutOfRangeException.ThrowIfNegative(n, "shape.N");
        ArgumentOutOfRangeException.ThrowIfNegative(k, "shape.K");
        CheckRange(shape.A, 0, (long)m * k * shape.AType.SizeOf(), "shape.A");
        CheckRange(shape.B, 0, (long)k * n * shape.BType.SizeOf(), "shape.B");
        CheckRange(shape.C, 0, (long)m * n * sizeof(float), "shape.C");
        // The kernel reads A and B through restrict pointers while it writes C.
        if (ReferenceEquals(shape.C, shape.A) || ReferenceEquals(shape.C, shape.B))
            throw new ArgumentException("C is one of the inputs: the product would read what it overwrites", nameof(shape));
        ref OpenClKernel? slot = ref _matMul[LinalgGrid.MatMulSlot(shape.AType, shape.BType)];
        OpenClKernel kernel = slot ??= LinalgKernel(LinalgGrid.MatMulKernel(shape.AType, shape.BType));
        if (m == 0 || n == 0) return;
        kernel.Launch(Queue, (LinalgGrid.MatMulGroups(m, n), 1), LinalgGrid.GroupThreads,
            shape.A, shape.B, shape.C, m, n, k, LinalgGrid.Flags(shape.TransposeA, shape.TransposeB), Bits(alpha), Bits(beta));
    }

    /// <inheritdoc/>
    public override void Syrk(DeviceBuffer a, DType aType, int rows, int columns, DeviceBuffer c, float alpha, float beta)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        CheckRange(a, 0, (long)rows * columns * aType.SizeOf(), nameof(a));
        CheckRange(c, 0, (long)columns * columns * sizeof(float), nameof(c));
        if (ReferenceEquals(a, c))
            throw new ArgumentException("c is a itself: the product would read what it overwrites", nameof(c));
        ref OpenClKernel? slot = ref _syrk[LinalgGrid.SyrkSlot(aType)];
        OpenClKernel kernel = slot ??= LinalgKernel(LinalgGrid.SyrkKernel(aType));
        if (columns == 0) return;
        kernel.Launch(Queue, (LinalgGrid.SyrkGroups(columns), 1), LinalgGrid.GroupThreads, a, c, rows, columns, Bits(alpha), Bits(beta));
    }

    /// <summary>
    /// A kernel of linalg.cl, refused with the driver's own words when the device cannot run it: each one must run in
    /// groups of exactly <see cref="LinalgGrid.GroupThreads"/> work-items (its reqd_work_group_size).
    /// </summary>
    private OpenClKernel LinalgKernel(string name)
    {
        OpenClKernel kernel = Program(KernelSources.Get(LinalgGrid.Source)).Kernel(name);
        if (kernel.MaxGroupSize < LinalgGrid.GroupThreads)
            throw new NativeTensorException(
                $"opencl: '{Name}' runs {name} in groups of at most {kernel.MaxGroupSize} work-items, but its tiles need {LinalgGrid.GroupThreads}; multiply on the cpu instead")
            { ErrorName = "CL_INVALID_WORK_GROUP_SIZE" };
        return kernel;
    }
}
