namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The device half of Moments.Update on CUDA: the kernels of <c>kernels/moments.cl</c> (see its header for the math,
/// the launch shapes and the bounds), each launched inside a <see cref="Work"/> with every buffer leased. Column sums
/// and centring run as 2-D grids (columns along x in blocks of <see cref="MomentsBlockThreads"/>, chunks or output rows
/// along y); the compensated add runs as a conversion does. The kernels only add and subtract with __fadd_rn (ADD_RN)
/// and NVRTC's options keep subnormals, so they give the CPU backend's bits.
/// </summary>
internal sealed unsafe partial class CudaBackend
{
    private const string MomentsSource = "moments.cl";

    /// <summary>Threads per block of the column-sum and centring kernels.</summary>
    private const int MomentsBlockThreads = 256;

    /// <summary>Blocks along columns at most; past it each thread takes more columns (the kernels loop).</summary>
    private const long MaxColumnBlocks = 1L << 14;

    public override void MomentColumnSums(DeviceBuffer batch, DType dtype, long batchRows, long columns, DeviceBuffer? rowIndex, long count,
        long chunkRows, DeviceBuffer sums, DeviceBuffer? rowFlags)
    {
        long chunks = ColumnSumChunks(batchRows, columns, count, chunkRows, rowIndex is not null);
        string name = MomentColumnSumsKernel(dtype);
        using Lease input = Hold(batch, 0, checked(batchRows * columns * dtype.SizeOf()), nameof(batch));
        using Lease index = rowIndex is null ? default : Hold(rowIndex, 0, checked(count * sizeof(long)), nameof(rowIndex));
        using Lease output = Hold(sums, 0, checked(chunks * columns * 2 * sizeof(float)), nameof(sums));
        using Lease flagged = rowFlags is null ? default : Hold(rowFlags, 0, checked(batchRows * sizeof(uint)), nameof(rowFlags));
        if ((rowFlags is null || batchRows == 0) && (chunks == 0 || columns == 0)) return;
        using Work work = Begin();
        // The function is loaded before the flags are touched: a compile or load failure then changes nothing.
        IntPtr kernel = _kernels.Function(MomentsSource, name);
        IntPtr stream = work.Context.Stream;
        if (rowFlags is not null && batchRows > 0)
            _driver.Check(_driver.cuMemsetD32Async(At(flagged, 0), 0, (nuint)batchRows, stream), "cuMemsetD32Async");
        if (chunks == 0 || columns == 0) return;
        ulong x = At(input, 0), s = At(output, 0);
        // An unused pointer is never dereferenced; the batch (read-only) and the sums stand in for it.
        ulong rows = rowIndex is null ? x : At(index, 0), bad = rowFlags is null ? s : At(flagged, 0);
        uint flags = (rowIndex is null ? 0u : 1u) | (rowFlags is null ? 0u : 2u);
        // moments_column_sums_*(x, batch_rows, columns, index, count, flags, chunk_rows, sums, row_flags), in order.
        void** arguments = stackalloc void*[9];
        arguments[0] = &x;
        arguments[1] = &batchRows;
        arguments[2] = &columns;
        arguments[3] = &rows;
        arguments[4] = &count;
        arguments[5] = &flags;
        arguments[6] = &chunkRows;
        arguments[7] = &s;
        arguments[8] = &bad;
        LaunchColumns(work, kernel, name, columns, chunks, arguments);
    }

    public override void MomentCentre(DeviceBuffer batch, DType dtype, long batchRows, int rowElements, DeviceBuffer? rowIndex, long first,
        int taken, int column, int width, DeviceBuffer pivot, DeviceBuffer output)
    {
        CheckCentre(batchRows, rowElements, rowIndex is not null, first, taken, column, width);
        string name = MomentCentreKernel(dtype);
        if (ReferenceEquals(output, batch) || ReferenceEquals(output, pivot) || ReferenceEquals(output, rowIndex))
            throw new ArgumentException("output is one of the inputs: the kernel would read what it overwrites", nameof(output));
        using Lease input = Hold(batch, 0, checked(batchRows * rowElements * dtype.SizeOf()), nameof(batch));
        using Lease index = rowIndex is null ? default : Hold(rowIndex, 0, checked((first + taken) * sizeof(long)), nameof(rowIndex));
        using Lease centre = Hold(pivot, 0, (long)rowElements * sizeof(float), nameof(pivot));
        using Lease target = Hold(output, 0, (long)taken * width * sizeof(float), nameof(output));
        if (taken == 0 || width == 0) return;
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(MomentsSource, name);
        ulong x = At(input, 0), p = At(centre, 0), o = At(target, 0);
        ulong rows = rowIndex is null ? x : At(index, 0);
        long elements = rowElements, from = column, count = width;
        uint useIndex = rowIndex is null ? 0u : 1u;
        // moments_centre_*(x, batch_rows, row_elements, index, use_index, first, column, width, pivot, out), in order.
        void** arguments = stackalloc void*[10];
        arguments[0] = &x;
        arguments[1] = &batchRows;
        arguments[2] = &elements;
        arguments[3] = &rows;
        arguments[4] = &useIndex;
        arguments[5] = &first;
        arguments[6] = &from;
        arguments[7] = &count;
        arguments[8] = &p;
        arguments[9] = &o;
        LaunchColumns(work, kernel, name, width, taken, arguments);
    }

    public override void CompensatedAdd(DeviceBuffer hi, DeviceBuffer lo, DeviceBuffer addend, long count, bool start)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long bytes = checked(count * sizeof(float));
        if (ReferenceEquals(hi, lo) || ReferenceEquals(hi, addend) || ReferenceEquals(lo, addend))
            throw new ArgumentException("hi, lo and addend must be three different buffers", nameof(addend));
        using Lease high = Hold(hi, 0, bytes, nameof(hi));
        using Lease low = Hold(lo, 0, bytes, nameof(lo));
        using Lease term = Hold(addend, 0, bytes, nameof(addend));
        if (count == 0) return;
        const string name = "moments_compensated_add";
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(MomentsSource, name);
        ulong h = At(high, 0), l = At(low, 0), s = At(term, 0);
        uint first = start ? 1u : 0u;
        // moments_compensated_add(hi, lo, s, count, start), in order.
        void** arguments = stackalloc void*[5];
        arguments[0] = &h;
        arguments[1] = &l;
        arguments[2] = &s;
        arguments[3] = &count;
        arguments[4] = &first;
        Launch(work, kernel, name, ConvertBlocks(count, ResidentThreads), 1, ConvertBlockThreads, arguments);
    }

    /// <summary>
    /// A 2-D launch: blocks of <see cref="MomentsBlockThreads"/> along <paramref name="columns"/> (at most
    /// <see cref="MaxColumnBlocks"/>) times <paramref name="gridRows"/> (at most gridDim.y's 65535, which the callers
    /// checked); the caller holds every lease and the <see cref="Work"/>.
    /// </summary>
    private void LaunchColumns(in Work work, IntPtr kernel, string name, long columns, long gridRows, void** arguments)
    {
        uint blocks = (uint)Math.Clamp((columns + MomentsBlockThreads - 1) / MomentsBlockThreads, 1, MaxColumnBlocks);
        Launch(work, kernel, name, blocks, (uint)gridRows, MomentsBlockThreads, arguments);
    }
}
