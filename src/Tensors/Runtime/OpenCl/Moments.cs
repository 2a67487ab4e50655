using System.Numerics;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The launches of <c>kernels/moments.cl</c> (see its header for the math, the launch shapes and the bounds): column
/// sums as a 2-D range (columns across groups, one group row per chunk of rows), centring as a 2-D range (columns
/// across groups, one group row per output row), and the compensated add as a grid-stride range sized as a conversion.
/// The kernels only add and subtract (ADD_RN, FP_CONTRACT off), correctly rounded on every conforming device, so no
/// build option is needed and they give the CPU backend's bits wherever subnormals are kept (CL_FP_DENORM); a device
/// that flushes them loses at most 2^-126 per add, which the error bound of Moments counts as negligible.
/// </summary>
internal sealed unsafe partial class OpenClBackend
{
    /// <summary>Groups along columns at most; past it each work-item takes more columns (the kernels loop).</summary>
    private const long MaxColumnGroups = 1L << 14;

    private readonly OpenClKernel?[] _columnSums = new OpenClKernel?[3];   // by FloatIndex
    private readonly OpenClKernel?[] _centre = new OpenClKernel?[3];       // by FloatIndex
    private OpenClKernel? _compensatedAdd;

    /// <inheritdoc/>
    public override void MomentColumnSums(DeviceBuffer batch, DType dtype, long batchRows, long columns, DeviceBuffer? rowIndex, long count,
        long chunkRows, DeviceBuffer sums, DeviceBuffer? rowFlags)
    {
        long chunks = ColumnSumChunks(batchRows, columns, count, chunkRows, rowIndex is not null);
        CheckRange(batch, 0, checked(batchRows * columns * dtype.SizeOf()), nameof(batch));
        if (rowIndex is not null) CheckRange(rowIndex, 0, checked(count * sizeof(long)), nameof(rowIndex));
        CheckRange(sums, 0, checked(chunks * columns * 2 * sizeof(float)), nameof(sums));
        if (rowFlags is not null) CheckRange(rowFlags, 0, checked(batchRows * sizeof(uint)), nameof(rowFlags));
        // The kernel exists before the flags are touched: a build failure then changes nothing.
        ref OpenClKernel? slot = ref _columnSums[FloatIndex(dtype)];
        OpenClKernel kernel = slot ??= MomentsKernel(MomentColumnSumsKernel(dtype));
        if (rowFlags is not null && batchRows > 0)
        {
            uint zero = 0;
            using var lease = new Lease(rowFlags);
            Check(OpenClNative.clEnqueueFillBuffer(Queue, lease.Pointer, &zero, sizeof(uint), 0, (nuint)(batchRows * sizeof(uint)), 0, null, null),
                "clEnqueueFillBuffer(row flags)");
        }
        if (chunks == 0 || columns == 0) return;
        (long local, long groups) = ColumnShape(kernel, columns);
        uint flags = (rowIndex is null ? 0u : 1u) | (rowFlags is null ? 0u : 2u);
        // An unused pointer is never dereferenced; the batch (read-only) and the sums stand in for it.
        kernel.Launch(Queue, (groups, chunks), local, batch, batchRows, columns, rowIndex ?? batch, count, flags, chunkRows, sums, rowFlags ?? sums);
    }

    /// <inheritdoc/>
    public override void MomentCentre(DeviceBuffer batch, DType dtype, long batchRows, int rowElements, DeviceBuffer? rowIndex, long first,
        int taken, int column, int width, DeviceBuffer pivot, DeviceBuffer output)
    {
        CheckCentre(batchRows, rowElements, rowIndex is not null, first, taken, column, width);
        CheckRange(batch, 0, checked(batchRows * rowElements * dtype.SizeOf()), nameof(batch));
        if (rowIndex is not null) CheckRange(rowIndex, 0, checked((first + taken) * sizeof(long)), nameof(rowIndex));
        CheckRange(pivot, 0, (long)rowElements * sizeof(float), nameof(pivot));
        CheckRange(output, 0, (long)taken * width * sizeof(float), nameof(output));
        if (ReferenceEquals(output, batch) || ReferenceEquals(output, pivot) || ReferenceEquals(output, rowIndex))
            throw new ArgumentException("output is one of the inputs: the kernel would read what it overwrites", nameof(output));
        ref OpenClKernel? slot = ref _centre[FloatIndex(dtype)];
        OpenClKernel kernel = slot ??= MomentsKernel(MomentCentreKernel(dtype));
        if (taken == 0 || width == 0) return;
        (long local, long groups) = ColumnShape(kernel, width);
        kernel.Launch(Queue, (groups, taken), local, batch, batchRows, (long)rowElements, rowIndex ?? batch, rowIndex is null ? 0u : 1u, first,
            (long)column, (long)width, pivot, output);
    }

    /// <inheritdoc/>
    public override void CompensatedAdd(DeviceBuffer hi, DeviceBuffer lo, DeviceBuffer addend, long count, bool start)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long bytes = checked(count * sizeof(float));
        CheckRange(hi, 0, bytes, nameof(hi));
        CheckRange(lo, 0, bytes, nameof(lo));
        CheckRange(addend, 0, bytes, nameof(addend));
        if (ReferenceEquals(hi, lo) || ReferenceEquals(hi, addend) || ReferenceEquals(lo, addend))
            throw new ArgumentException("hi, lo and addend must be three different buffers", nameof(addend));
        OpenClKernel kernel = _compensatedAdd ??= MomentsKernel("moments_compensated_add");
        if (count == 0) return;
        (long local, long groups) = ConvertShape(kernel, count);
        kernel.Launch(Queue, (groups, 1), local, hi, lo, addend, count, start ? 1u : 0u);
    }

    /// <summary>
    /// Work-items per group (a power of two covering <paramref name="columns"/>, at least the kernel's preferred
    /// multiple, at most 256 or the kernel's and device's limit) and groups along the columns, at most
    /// <see cref="MaxColumnGroups"/>.
    /// </summary>
    private (long Local, long Groups) ColumnShape(OpenClKernel kernel, long columns)
    {
        long most = Math.Max(1, Math.Min(PreferredGroupSize, Math.Min(kernel.MaxGroupSize, MaxGroupSize)));
        most = 1L << BitOperations.Log2((ulong)most);
        long local = Math.Clamp((long)BitOperations.RoundUpToPowerOf2((ulong)columns), Math.Min(kernel.GroupMultiple, most), most);
        return (local, Math.Clamp((columns + local - 1) / local, 1, MaxColumnGroups));
    }

    private OpenClKernel MomentsKernel(string name) => Program(KernelSources.Get("moments.cl")).Kernel(name);
}
