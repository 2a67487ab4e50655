namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// Matrix products on CUDA: one launch of <c>kernels/linalg.cl</c> per call (see its header for the math, the tiling,
/// the launch shape and the bounds), one block of <see cref="LinalgGrid.GroupThreads"/> threads per 64 x 64 tile of C
/// in a 1-D grid, every buffer leased while the launch is queued. The products are <c>__fmaf_rn</c> (FMA of dialect.h)
/// and NVRTC's options keep subnormals, so the header's error bound holds as written.
/// </summary>
internal sealed unsafe partial class CudaBackend
{
    public override void MatMul(in MatMulShape shape, float alpha, float beta)
    {
        int m = shape.M, n = shape.N, k = shape.K;
        ArgumentOutOfRangeException.ThrowIfNegative(m, "shape.M");
        ArgumentOutOfRangeException.ThrowIfNegative(n, "shape.N");
        ArgumentOutOfRangeException.ThrowIfNegative(k, "shape.K");
        string name = LinalgGrid.MatMulKernel(shape.AType, shape.BType);
        // The kernel reads A and B through __restrict__ pointers while it writes C.
        if (ReferenceEquals(shape.C, shape.A) || ReferenceEquals(shape.C, shape.B))
            throw new ArgumentException("C is one of the inputs: the product would read what it overwrites", nameof(shape));
        using Lease left = Hold(shape.A, 0, (long)m * k * shape.AType.SizeOf(), "shape.A");
        using Lease right = Hold(shape.B, 0, (long)k * n * shape.BType.SizeOf(), "shape.B");
        using Lease output = Hold(shape.C, 0, (long)m * n * sizeof(float), "shape.C");
        if (m == 0 || n == 0) return;
        long groups = LinalgGrid.MatMulGroups(m, n);
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(LinalgGrid.Source, name);
        ulong a = At(left, 0), b = At(right, 0), c = At(output, 0);
        uint flags = LinalgGrid.Flags(shape.TransposeA, shape.TransposeB), alphaBits = Bits(alpha), betaBits = Bits(beta);
        // matmul_*(a, b, c, m, n, k, flags, alpha_bits, beta_bits), in order.
        void** arguments = stackalloc void*[9];
        arguments[0] = &a;
        arguments[1] = &b;
        arguments[2] = &c;
        arguments[3] = &m;
        arguments[4] = &n;
        arguments[5] = &k;
        arguments[6] = &flags;
        arguments[7] = &alphaBits;
        arguments[8] = &betaBits;
        Launch(work, kernel, name, (uint)groups, 1, LinalgGrid.GroupThreads, arguments);
    }

    public override void Syrk(DeviceBuffer a, DType aType, int rows, int columns, DeviceBuffer c, float alpha, float beta)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        string name = LinalgGrid.SyrkKernel(aType);
        if (ReferenceEquals(a, c))
            throw new ArgumentException("c is a itself: the product would read what it overwrites", nameof(c));
        using Lease input = Hold(a, 0, (long)rows * columns * aType.SizeOf(), nameof(a));
        using Lease output = Hold(c, 0, (long)columns * columns * sizeof(float), nameof(c));
        if (columns == 0) return;
        long groups = LinalgGrid.SyrkGroups(columns);
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(LinalgGrid.Source, name);
        ulong source = At(input, 0), target = At(output, 0);
        uint alphaBits = Bits(alpha), betaBits = Bits(beta);
        // syrk_*(a, c, rows, columns, alpha_bits, beta_bits), in order.
        void** arguments = stackalloc void*[6];
        arguments[0] = &source;
        arguments[1] = &target;
        arguments[2] = &rows;
        arguments[3] = &columns;
        arguments[4] = &alphaBits;
        arguments[5] = &betaBits;
        // One block per tile in a 1-D grid; LinalgGrid caps groups at gridDim.x's 2^31 - 1.
        Launch(work, kernel, name, (uint)groups, 1, LinalgGrid.GroupThreads, arguments);
    }
}
