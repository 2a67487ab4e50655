using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// The kernels of <c>kernels/moments.cl</c> (see its header for the math, the launch shapes and the bounds). They only
/// add and subtract (ADD_RN, FP_CONTRACT off), correctly rounded on every conforming device, so they give the CPU
/// backend's bits wherever subnormals are kept; a device that flushes them loses at most 2^-126 per add, which the
/// error bound of Moments counts as negligible, so subnormals are not required.
/// </summary>
internal static class MomentsKernels
{
    public const string Source = "moments.cl";

    private static readonly string[] Types = ["f32", "f16", "bf16"];

    private static readonly DeviceKernel[] ColumnSumKernels =
        [.. Types.Select(t => new DeviceKernel(Source, $"moments_column_sums_{t}",
            [Buffer("x"), Int64("batch_rows"), Int64("columns"), Buffer("index"), Int64("count"), UInt32("flags"), Int64("chunk_rows"),
             Buffer("sums"), Buffer("row_flags")]))];

    private static readonly DeviceKernel[] CentreKernels =
        [.. Types.Select(t => new DeviceKernel(Source, $"moments_centre_{t}",
            [Buffer("x"), Int64("batch_rows"), Int64("row_elements"), Buffer("index"), UInt32("use_index"), Int64("first"), Int64("column"),
             Int64("width"), Buffer("pivot"), Buffer("out")]))];

    public static readonly DeviceKernel CompensatedAdd = new(Source, "moments_compensated_add",
        [Buffer("hi"), Buffer("lo"), Buffer("s"), Int64("count"), UInt32("start")]);

    public static DeviceKernel ColumnSums(DType dtype) => ColumnSumKernels[Index(dtype, "column sums")];

    public static DeviceKernel Centre(DType dtype) => CentreKernels[Index(dtype, "centring")];

    public static IEnumerable<DeviceKernel> All => [.. ColumnSumKernels, .. CentreKernels, CompensatedAdd];

    private static int Index(DType dtype, string what) => dtype switch
    {
        DType.Float32 => 0,
        DType.Float16 => 1,
        DType.BFloat16 => 2,
        _ => throw new ArgumentException($"no {what} for {dtype}: Float32, Float16 or BFloat16", nameof(dtype)),
    };
}

/// <summary>
/// The device half of Moments.Update on a kernel backend: column sums and centring as 2-D launches (columns along x,
/// chunks or output rows along y; see <see cref="LaunchShapes.Columns"/>), the compensated add as a grid-stride launch.
/// </summary>
internal abstract partial class KernelBackend
{
    public override void MomentColumnSums(DeviceBuffer batch, DType dtype, long batchRows, long columns, DeviceBuffer? rowIndex, long count,
        long chunkRows, DeviceBuffer sums, DeviceBuffer? rowFlags)
    {
        long chunks = ColumnSumChunks(batchRows, columns, count, chunkRows, rowIndex is not null);
        DeviceKernel kernel = MomentsKernels.ColumnSums(dtype);
        CheckRange(batch, checked(batchRows * columns * dtype.SizeOf()), nameof(batch));
        if (rowIndex is not null) CheckRange(rowIndex, checked(count * sizeof(long)), nameof(rowIndex));
        CheckRange(sums, checked(chunks * columns * 2 * sizeof(float)), nameof(sums));
        if (rowFlags is not null) CheckRange(rowFlags, checked(batchRows * sizeof(uint)), nameof(rowFlags));
        // The kernel is built before the flags are touched: a build failure then changes nothing.
        KernelLimits limits = Prepare(kernel);
        if (rowFlags is not null && batchRows > 0) Fill(rowFlags, 0, batchRows);
        if (chunks == 0 || columns == 0) return;
        uint flags = (rowIndex is null ? 0u : 1u) | (rowFlags is null ? 0u : 2u);
        // An unused pointer is never dereferenced; the batch (read-only) and the sums stand in for it.
        Launch(kernel, LaunchShapes.Columns(limits, columns, chunks),
            batch, batchRows, columns, rowIndex ?? batch, count, flags, chunkRows, sums, rowFlags ?? sums);
    }

    public override void MomentCentre(DeviceBuffer batch, DType dtype, long batchRows, int rowElements, DeviceBuffer? rowIndex, long first,
        int taken, int column, int width, DeviceBuffer pivot, DeviceBuffer output)
    {
        CheckCentre(batchRows, rowElements, rowIndex is not null, first, taken, column, width);
        DeviceKernel kernel = MomentsKernels.Centre(dtype);
        CheckRange(batch, checked(batchRows * rowElements * dtype.SizeOf()), nameof(batch));
        if (rowIndex is not null) CheckRange(rowIndex, checked((first + taken) * sizeof(long)), nameof(rowIndex));
        CheckRange(pivot, (long)rowElements * sizeof(float), nameof(pivot));
        CheckRange(output, (long)taken * width * sizeof(float), nameof(output));
        if (ReferenceEquals(output, batch) || ReferenceEquals(output, pivot) || ReferenceEquals(output, rowIndex))
            throw new ArgumentException("output is one of the inputs: the kernel would read what it overwrites", nameof(output));
        KernelLimits limits = Prepare(kernel);
        if (taken == 0 || width == 0) return;
        Launch(kernel, LaunchShapes.Columns(limits, width, taken),
            batch, batchRows, (long)rowElements, rowIndex ?? batch, KernelArgument.Flag(rowIndex is not null), first, (long)column, (long)width, pivot, output);
    }

    public override void CompensatedAdd(DeviceBuffer hi, DeviceBuffer lo, DeviceBuffer addend, long count, bool start)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long bytes = checked(count * sizeof(float));
        CheckRange(hi, bytes, nameof(hi));
        CheckRange(lo, bytes, nameof(lo));
        CheckRange(addend, bytes, nameof(addend));
        if (ReferenceEquals(hi, lo) || ReferenceEquals(hi, addend) || ReferenceEquals(lo, addend))
            throw new ArgumentException("hi, lo and addend must be three different buffers", nameof(addend));
        DeviceKernel kernel = MomentsKernels.CompensatedAdd;
        KernelLimits limits = Prepare(kernel);
        if (count == 0) return;
        Launch(kernel, LaunchShapes.GridStride(limits, count), hi, lo, addend, count, KernelArgument.Flag(start));
    }
}
