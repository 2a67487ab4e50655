namespace NativeTensor.Runtime;

/// <summary>
/// One device's runtime: memory, transfers, and the kernels of every op family. Each backend lives in its own
/// folder (<c>Runtime/Cpu</c>, <c>Runtime/OpenCl</c>, <c>Runtime/Cuda</c>) behind this one small interface; the
/// public ops in <c>Ops/</c> validate arguments and then call exactly one of these methods.
/// </summary>
/// <remarks>
/// Contract for implementers: arguments arrive validated (shapes, dtypes, devices, host-side starts in range),
/// so a backend checks only what the host could not: device-resident indices, which it must bounds-check in the
/// kernel and report with <see cref="NativeTensorException"/> after synchronising. Every method is synchronous
/// with respect to host memory it receives; device-to-device work may stay queued until <see cref="Synchronize"/>
/// or the next host read. Methods may be called from several threads.
/// </remarks>
internal abstract class Backend : IDisposable
{
    private long _liveBuffers;
    private long _liveBytes;

    /// <summary>Which kind of runtime this is.</summary>
    public abstract DeviceKind Kind { get; }

    /// <summary>The hardware's own name, e.g. <c>pthread-skylake-avx512</c> or <c>NVIDIA H100 80GB HBM3</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Bytes of device memory the hardware reports in total.</summary>
    public abstract long TotalMemory { get; }

    /// <summary>
    /// Bytes of device memory free now, as the driver reports them (CUDA's <c>cuMemGetInfo</c>, which counts every
    /// process), or null where the runtime has no such query (OpenCL; the host, whose free RAM NativeTensor.Memory's
    /// <c>MemoryBudget</c> reads from the kernel and the cgroup).
    /// </summary>
    public virtual long? FreeMemory => null;

    /// <summary>Device buffers allocated by this backend and not yet released.</summary>
    public long LiveBuffers => Interlocked.Read(ref _liveBuffers);

    /// <summary>Bytes held by <see cref="LiveBuffers"/>.</summary>
    public long LiveBytes => Interlocked.Read(ref _liveBytes);

    /// <summary>Allocates <paramref name="bytes"/> of device memory (contents undefined); zero bytes still gives a valid, distinct buffer.</summary>
    /// <exception cref="NativeTensorException">Out of memory: the message says how much was asked and how much is free.</exception>
    public abstract DeviceBuffer Allocate(long bytes);

    /// <summary>Copies host bytes into <paramref name="destination"/> at <paramref name="offset"/>; returns when done.</summary>
    public abstract void Write(DeviceBuffer destination, long offset, ReadOnlySpan<byte> source);

    /// <summary>Copies device bytes at <paramref name="offset"/> into host memory; returns when done.</summary>
    public abstract void Read(DeviceBuffer source, long offset, Span<byte> destination);

    /// <summary>Copies <paramref name="bytes"/> between two buffers of this backend.</summary>
    public abstract void Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer destination, long destinationOffset, long bytes);

    /// <summary>Waits until all queued work on this device is finished.</summary>
    public abstract void Synchronize();

    /// <summary>Marks the current end of the device's queue, for timing what is queued after it.</summary>
    public abstract DeviceEvent RecordEvent();

    /// <summary>
    /// <c>output[b] = frames[starts[b] .. starts[b] + window)</c> for each b: copies <c>starts.Length</c> blocks of
    /// <c>window * rowBytes</c> bytes. Starts were validated on the host.
    /// </summary>
    public abstract void GatherWindows(DeviceBuffer frames, long rowBytes, ReadOnlySpan<long> starts, int window, DeviceBuffer output);

    /// <summary>
    /// As the host-starts overload, with <paramref name="batch"/> Int64 starts already on this device. The kernel
    /// checks each start against <paramref name="frameCount"/> and clamps a bad one into range, so it never reads
    /// out of bounds and every output byte is defined; the call then throws <see cref="ArgumentOutOfRangeException"/>
    /// after synchronising, naming the first bad start.
    /// </summary>
    public abstract void GatherWindows(DeviceBuffer frames, long frameCount, long rowBytes, DeviceBuffer starts, int batch, int window, DeviceBuffer output);

    /// <summary>
    /// The fused gather-convert: as <see cref="GatherWindows(DeviceBuffer, long, ReadOnlySpan{long}, int, DeviceBuffer)"/>,
    /// with frames of <paramref name="from"/> and an output of <paramref name="to"/> (two different floating-point
    /// dtypes), each element converted as <see cref="Reference.PrecisionReference.Convert"/> does, in the same pass.
    /// A row holds <paramref name="rowElements"/> elements.
    /// </summary>
    public abstract void GatherWindows(DeviceBuffer frames, DType from, long rowElements, ReadOnlySpan<long> starts, int window, DeviceBuffer output, DType to);

    /// <summary>The fused gather-convert with starts on the device: checked, clamped and flagged as the same-dtype overload does.</summary>
    public abstract void GatherWindows(DeviceBuffer frames, DType from, long frameCount, long rowElements, DeviceBuffer starts, int batch, int window, DeviceBuffer output, DType to);

    /// <summary><c>output[s] = frames[s * stride .. s * stride + window)</c> for s in [0, count).</summary>
    public abstract void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output);

    /// <summary>
    /// <c>destination[i] = (to) source[i]</c> for <paramref name="count"/> elements, both float dtypes, bit-exact with
    /// <see cref="Reference.PrecisionReference.Convert"/>; <paramref name="from"/> == <paramref name="to"/> copies.
    /// </summary>
    public abstract void Convert(DeviceBuffer source, DType from, DeviceBuffer destination, DType to, long count);

    /// <summary>
    /// In place, for each gradient: <c>buffer[i] = buffer[i] * inverseScale</c> for <c>Count</c> elements of
    /// <c>DType</c> (Float32 or BFloat16), bit-exact with <see cref="Reference.UnscaleReference.Unscale"/>. Returns
    /// whether any input element was NaN or ±Inf. Arguments were validated (distinct buffers of this backend, a finite
    /// positive scale); a device backend keeps one flag for the whole list and reads it back once.
    /// </summary>
    public abstract bool UnscaleAndCheck(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> gradients, float inverseScale);

    /// <summary>
    /// Whether any element of any tensor is NaN or ±Inf (Float32, Float16 or BFloat16), reading each once and writing
    /// nothing; a device backend keeps one flag for the whole list and reads it back once.
    /// </summary>
    public abstract bool FindNonFinite(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> tensors);

    /// <summary>
    /// One fused AdamW step in place over <see cref="StepBuffers.Count"/> elements, in the operation order of
    /// <see cref="AdamWConstants"/>: reads parameters, gradient and both moments once, writes parameters, moments and
    /// (when set) the working copy, rounded as <see cref="Reference.PrecisionReference.Convert"/> does.
    /// </summary>
    public abstract void AdamWStep(in StepBuffers buffers, in AdamWConstants constants);

    /// <summary>One fused SGD-with-momentum step in place, in the operation order of <see cref="SgdConstants"/>.</summary>
    public abstract void SgdStep(in StepBuffers buffers, in SgdConstants constants);

    /// <summary>
    /// <c>C = alpha * op(A) * op(B) + beta * C</c> (see <see cref="MatMulShape"/>), accumulating in Float32. When
    /// <paramref name="beta"/> is 0, C is only written (a NaN already in C does not propagate), as in BLAS.
    /// </summary>
    public abstract void MatMul(in MatMulShape shape, float alpha, float beta);

    /// <summary>
    /// The symmetric rank-k update <c>C = alpha * A^T * A + beta * C</c>: A is [<paramref name="rows"/>,
    /// <paramref name="columns"/>] row-major of <paramref name="aType"/> (any float dtype), C is Float32
    /// [columns, columns], written in full (both triangles, bit-identical mirror images). beta 0 only writes C; otherwise
    /// only the lower triangle of the old C is read (it is taken as symmetric, as BLAS ssyrk with uplo = 'L').
    /// </summary>
    public abstract void Syrk(DeviceBuffer a, DType aType, int rows, int columns, DeviceBuffer c, float alpha, float beta);

    /// <summary>
    /// Attention forward (<see cref="Attention.Forward"/>): <c>output[b, h, i] = Σ_j softmax_j(scale q_i · k_j) v_j</c>
    /// over the keys query i sees (<see cref="AttentionShape.Visible"/>), accumulated in Float32 with an online softmax and
    /// no [Queries, Keys] matrix; a query that sees no key gets 0. When <paramref name="logSumExp"/> is given (Float32,
    /// <see cref="AttentionShape.QueryRows"/>), it receives <c>log Σ_j exp(scale q_i · k_j)</c> (natural log), -inf for a
    /// query that sees no key.
    /// </summary>
    public abstract void AttentionForward(in AttentionShape shape, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        DeviceBuffer? logSumExp);

    /// <summary>
    /// Attention backward (<see cref="Attention.Backward"/>) on dense keys: from the output gradient, the inputs, the
    /// forward's output and log-sum-exp, writes dq, dk and dv (dk and dv summed over the query heads of each group),
    /// recomputing the scores tile by tile. <paramref name="delta"/> is Float32 scratch of
    /// <see cref="AttentionShape.QueryRows"/> elements for <c>Σ_d dO ∘ O</c>. Bitwise deterministic run to run: no sum's
    /// order depends on scheduling.
    /// </summary>
    public abstract void AttentionBackward(in AttentionShape shape, DeviceBuffer outputGradient, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer output, DeviceBuffer logSumExp, DeviceBuffer delta, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv);

    /// <summary>
    /// Compensated column sums of a [<paramref name="batchRows"/>, <paramref name="columns"/>] batch of
    /// <paramref name="dtype"/> (any float dtype) over <paramref name="count"/> of its rows, in chunks of
    /// <paramref name="chunkRows"/> rows (see <c>kernels/moments.cl</c>): for chunk c and column e, the TwoSum cascade
    /// over the chunk's rows in order leaves <c>sums[2 (c columns + e)] = hi</c> and <c>sums[2 (c columns + e) + 1] = lo</c>
    /// (Float32), with <c>|hi + lo - Σ x| &lt;= γ_(m-1)² Σ |x|</c> for a chunk of m rows. Row r of the sum is
    /// <c>rowIndex[r]</c> (Int64 on this device) when <paramref name="rowIndex"/> is given, else r; a listed row outside
    /// the batch is not read and counts as NaN. When <paramref name="rowFlags"/> is given (<paramref name="batchRows"/>
    /// uint32s) it is zeroed, then <c>rowFlags[row] = 1</c> for every summed row holding a NaN or ±Inf. sums holds
    /// <c>2 columns ceil(count / chunkRows)</c> floats; at most <see cref="MaxMomentGridRows"/> chunks.
    /// </summary>
    public abstract void MomentColumnSums(DeviceBuffer batch, DType dtype, long batchRows, long columns, DeviceBuffer? rowIndex, long count,
        long chunkRows, DeviceBuffer sums, DeviceBuffer? rowFlags);

    /// <summary>
    /// Centres one block of rows in Float32: <c>output[r, j] = x[row(r), column + j] - pivot[column + j]</c> for r &lt;
    /// <paramref name="taken"/> (at most <see cref="MaxMomentGridRows"/>) and j &lt; <paramref name="width"/>, x the [<paramref name="batchRows"/>,
    /// <paramref name="rowElements"/>] batch of <paramref name="dtype"/> (16-bit values widen exactly, so the subtraction
    /// is the one rounding), pivot <paramref name="rowElements"/> floats, output [taken, width] floats. row(r) is
    /// <c>rowIndex[first + r]</c> (Int64 on this device) when <paramref name="rowIndex"/> is given, else first + r; a
    /// listed row outside the batch is not read and gives a NaN output row. Bit-exact across backends.
    /// </summary>
    public abstract void MomentCentre(DeviceBuffer batch, DType dtype, long batchRows, int rowElements, DeviceBuffer? rowIndex, long first,
        int taken, int column, int width, DeviceBuffer pivot, DeviceBuffer output);

    /// <summary>
    /// <c>(hi[i], lo[i]) += addend[i]</c> for i &lt; <paramref name="count"/>, Float32, by TwoSum: <c>t = hi + s</c>,
    /// <c>z = t - hi</c>, <c>lo += (hi - (t - z)) + (s - z)</c>, <c>hi = t</c>, each rounded to nearest and none fused,
    /// so hi + lo keeps what the rounding of hi drops. With <paramref name="start"/>, <c>hi = addend</c> and
    /// <c>lo = +0</c> without reading them. Bit-exact across backends (barring NaN payloads and subnormal flushing).
    /// </summary>
    public abstract void CompensatedAdd(DeviceBuffer hi, DeviceBuffer lo, DeviceBuffer addend, long count, bool start);

    /// <summary>
    /// The most chunks <see cref="MomentColumnSums"/> takes and the most rows <see cref="MomentCentre"/> centres in one
    /// call: CUDA's gridDim.y, which both run along.
    /// </summary>
    public const int MaxMomentGridRows = 65535;

    /// <summary>
    /// The checks every backend's <see cref="MomentColumnSums"/> makes before touching a buffer: non-negative sizes,
    /// chunkRows at least 1, at most <see cref="MaxMomentGridRows"/> chunks; returns the chunk count.
    /// </summary>
    internal static long ColumnSumChunks(long batchRows, long columns, long count, long chunkRows, bool indexed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchRows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkRows);
        if (!indexed && count > batchRows)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"count = {count}: without a row index at most batchRows = {batchRows} rows are summed");
        long chunks = count / chunkRows + (count % chunkRows == 0 ? 0 : 1);
        if (chunks > MaxMomentGridRows)
            throw new ArgumentOutOfRangeException(nameof(chunkRows), chunkRows,
                $"{count} rows in chunks of {chunkRows} make {chunks} chunks: at most {MaxMomentGridRows}");
        return chunks;
    }

    /// <summary>The checks every backend's <see cref="MomentCentre"/> makes before touching a buffer.</summary>
    internal static void CheckCentre(long batchRows, int rowElements, bool indexed, long first, int taken, int column, int width)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchRows);
        ArgumentOutOfRangeException.ThrowIfNegative(rowElements);
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfNegative(taken);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(taken, MaxMomentGridRows);
        ArgumentOutOfRangeException.ThrowIfNegative(column);
        ArgumentOutOfRangeException.ThrowIfNegative(width);
        if ((long)column + width > rowElements)
            throw new ArgumentOutOfRangeException(nameof(width), width, $"columns [{column}, {column} + {width}) run past a row of {rowElements} elements");
        if (!indexed && first + taken > batchRows)
            throw new ArgumentOutOfRangeException(nameof(taken), taken, $"rows [{first}, {first} + {taken}) run past the batch's {batchRows} rows");
    }

    /// <summary>Called by a buffer when it comes to life, to keep the leak counters.</summary>
    internal void Track(long bytes)
    {
        Interlocked.Increment(ref _liveBuffers);
        Interlocked.Add(ref _liveBytes, bytes);
    }

    /// <summary>Called by a buffer's release, finaliser or not.</summary>
    internal void Untrack(long bytes)
    {
        Interlocked.Decrement(ref _liveBuffers);
        Interlocked.Add(ref _liveBytes, -bytes);
    }

    /// <summary>Releases the device's context and cached kernels; live buffers keep what they need.</summary>
    public virtual void Dispose() { }
}
