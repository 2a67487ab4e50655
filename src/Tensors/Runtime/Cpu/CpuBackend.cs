using System.Buffers;
using System.Runtime.InteropServices;
using NativeTensor.Cpu;

namespace NativeTensor.Runtime.Cpu;

/// <summary>
/// The host as a device: buffers are aligned native memory, kernels are the SIMD code in <c>Cpu/</c>, run over
/// all cores when the work is large enough to pay for the hand-off.
/// </summary>
/// <param name="simd">The widest vector the kernels may use; <see cref="SimdWidths.Best"/> outside tests.</param>
internal sealed unsafe class CpuBackend(SimdWidth simd) : Backend
{
    public CpuBackend() : this(SimdWidths.Best) { }

    public SimdWidth Simd { get; } = simd;

    public override DeviceKind Kind => DeviceKind.Cpu;

    public override string Name { get; } = $"{Environment.ProcessorCount} cores, {simd.Describe()}";

    public override long TotalMemory => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    public override DeviceBuffer Allocate(long bytes) => CpuBuffer.Allocate(this, bytes);

    public override void Write(DeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        using var to = new Lease(destination);
        fixed (byte* src = source) BlockCopy.Copy(src, At(destination, offset, source.Length), source.Length, Simd);
    }

    public override void Read(DeviceBuffer source, long offset, Span<byte> destination)
    {
        using var from = new Lease(source);
        fixed (byte* dst = destination) BlockCopy.Copy(At(source, offset, destination.Length), dst, destination.Length, Simd);
    }

    public override void Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer destination, long destinationOffset, long bytes)
    {
        using var from = new Lease(source);
        using var to = new Lease(destination);
        BlockCopy.Copy(At(source, sourceOffset, bytes), At(destination, destinationOffset, bytes), bytes, Simd);
    }

    public override void Synchronize() { }

    public override DeviceEvent RecordEvent() => new CpuEvent(System.Diagnostics.Stopwatch.GetTimestamp());

    private sealed class CpuEvent(long timestamp) : DeviceEvent
    {
        public override double MillisecondsSince(DeviceEvent start) =>
            System.Diagnostics.Stopwatch.GetElapsedTime(((CpuEvent)start).Timestamp, Timestamp).TotalMilliseconds;

        private long Timestamp { get; } = timestamp;
    }

    public override void GatherWindows(DeviceBuffer frames, long rowBytes, ReadOnlySpan<long> starts, int window, DeviceBuffer output)
    {
        using var source = new Lease(frames);
        using var target = new Lease(output);
        long block = window * rowBytes;
        fixed (long* s = starts)
            WindowKernels.Gather(At(frames, 0, 0), rowBytes, s, starts.Length, window, At(output, 0, starts.Length * block), Simd);
    }

    public override void GatherWindows(DeviceBuffer frames, long frameCount, long rowBytes, DeviceBuffer starts, int batch, int window, DeviceBuffer output) =>
        WithCheckedStarts(starts, batch, window, frameCount, checkedStarts => GatherWindows(frames, rowBytes, checkedStarts, window, output));

    private delegate void StartsAction(ReadOnlySpan<long> starts);

    /// <summary>
    /// The starts are ordinary host memory that another thread, or this very gather's output, could change between
    /// the check and the copy: take a snapshot, check it, and gather from exactly what was checked.
    /// </summary>
    private void WithCheckedStarts(DeviceBuffer starts, int batch, int window, long frameCount, StartsAction gather)
    {
        long[] snapshot = ArrayPool<long>.Shared.Rent(batch);
        try
        {
            Span<long> checkedStarts = snapshot.AsSpan(0, batch);
            Read(starts, 0, MemoryMarshal.AsBytes(checkedStarts));
            WindowStarts.Check(checkedStarts, window, frameCount);
            gather(checkedStarts);
        }
        finally
        {
            ArrayPool<long>.Shared.Return(snapshot);
        }
    }

    public override void GatherWindows(DeviceBuffer frames, DType from, long rowElements, ReadOnlySpan<long> starts, int window, DeviceBuffer output, DType to)
    {
        using var source = new Lease(frames);
        using var target = new Lease(output);
        long outputBytes = checked((long)starts.Length * window * rowElements * to.SizeOf());
        fixed (long* s = starts)
            WindowKernels.GatherConverting(At(frames, 0, 0), from, rowElements, s, starts.Length, window, At(output, 0, outputBytes), to, Simd);
    }

    public override void GatherWindows(DeviceBuffer frames, DType from, long frameCount, long rowElements, DeviceBuffer starts, int batch, int window, DeviceBuffer output, DType to) =>
        WithCheckedStarts(starts, batch, window, frameCount, checkedStarts => GatherWindows(frames, from, rowElements, checkedStarts, window, output, to));

    public override void StridedWindows(DeviceBuffer frames, long rowBytes, long count, int window, int stride, DeviceBuffer output)
    {
        using var source = new Lease(frames);
        using var target = new Lease(output);
        WindowKernels.Strided(At(frames, 0, 0), rowBytes, count, window, stride, At(output, 0, count * window * rowBytes), Simd);
    }

    public override void Convert(DeviceBuffer source, DType from, DeviceBuffer destination, DType to, long count)
    {
        using var input = new Lease(source);
        using var output = new Lease(destination);
        PrecisionKernels.Convert(At(source, 0, count * from.SizeOf()), from, At(destination, 0, count * to.SizeOf()), to, count, Simd);
    }

    public override bool UnscaleAndCheck(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> gradients, float inverseScale)
    {
        bool nonFinite = false;
        foreach ((DeviceBuffer buffer, DType dtype, long count) in gradients)
        {
            using var data = new Lease(buffer);
            // |= evaluates both sides: every gradient is scaled, whatever an earlier one held.
            nonFinite |= UnscaleKernels.UnscaleAndCheck(At(buffer, 0, count * dtype.SizeOf()), dtype, count, inverseScale, Simd);
        }
        return nonFinite;
    }

    public override bool FindNonFinite(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> tensors)
    {
        foreach ((DeviceBuffer buffer, DType dtype, long count) in tensors)
        {
            using var data = new Lease(buffer);
            if (UnscaleKernels.FindNonFinite(At(buffer, 0, count * dtype.SizeOf()), dtype, count, Simd)) return true;
        }
        return false;
    }

    public override void AdamWStep(in StepBuffers buffers, in AdamWConstants constants)
    {
        DeviceBuffer secondState = buffers.SecondState
            ?? throw new ArgumentException("AdamW needs a second-moment buffer (SecondState is null)", nameof(buffers));
        using var parameters = new Lease(buffers.Parameters);
        using var gradient = new Lease(buffers.Gradient);
        using var first = new Lease(buffers.FirstState);
        using var second = new Lease(secondState);
        using var working = buffers.Working is null ? default : new Lease(buffers.Working);
        long n = buffers.Count;
        OptimizerStepKernels.AdamW(At(buffers.Parameters, 0, n * 4), At(buffers.Gradient, 0, n * buffers.GradientType.SizeOf()),
            buffers.GradientType, At(buffers.FirstState, 0, n * 4), At(secondState, 0, n * 4),
            buffers.Working is null ? null : At(buffers.Working, 0, n * 2), buffers.WorkingType, n, constants, Simd);
    }

    public override void SgdStep(in StepBuffers buffers, in SgdConstants constants)
    {
        using var parameters = new Lease(buffers.Parameters);
        using var gradient = new Lease(buffers.Gradient);
        using var first = new Lease(buffers.FirstState);
        using var working = buffers.Working is null ? default : new Lease(buffers.Working);
        long n = buffers.Count;
        OptimizerStepKernels.Sgd(At(buffers.Parameters, 0, n * 4), At(buffers.Gradient, 0, n * buffers.GradientType.SizeOf()),
            buffers.GradientType, At(buffers.FirstState, 0, n * 4),
            buffers.Working is null ? null : At(buffers.Working, 0, n * 2), buffers.WorkingType, n, constants, Simd);
    }

    public override void MatMul(in MatMulShape shape, float alpha, float beta)
    {
        using var a = new Lease(shape.A);
        using var b = new Lease(shape.B);
        using var c = new Lease(shape.C);
        long aBytes = (long)shape.M * shape.K * shape.AType.SizeOf(), bBytes = (long)shape.K * shape.N * shape.BType.SizeOf();
        LinalgKernels.MatMul(At(shape.A, 0, aBytes), shape.AType, shape.TransposeA, At(shape.B, 0, bBytes), shape.BType, shape.TransposeB,
            (float*)At(shape.C, 0, (long)shape.M * shape.N * 4), shape.M, shape.N, shape.K, alpha, beta, Simd);
    }

    public override void Syrk(DeviceBuffer a, DType aType, int rows, int columns, DeviceBuffer c, float alpha, float beta)
    {
        using var input = new Lease(a);
        using var output = new Lease(c);
        LinalgKernels.Syrk(At(a, 0, (long)rows * columns * aType.SizeOf()), aType, rows, columns,
            (float*)At(c, 0, (long)columns * columns * 4), alpha, beta, Simd);
    }

    public override void AttentionForward(in AttentionShape shape, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        DeviceBuffer? logSumExp)
    {
        long queryBytes = shape.QueryElements * shape.DType.SizeOf(), keyBytes = shape.KeyElements * shape.DType.SizeOf();
        using var queries = new Lease(q);
        using var keys = new Lease(k);
        using var values = new Lease(v);
        using var result = new Lease(output);
        using var lse = logSumExp is null ? default : new Lease(logSumExp);
        AttentionKernels.Forward(shape, At(q, 0, queryBytes), At(k, 0, keyBytes), At(v, 0, keyBytes), At(output, 0, queryBytes),
            logSumExp is null ? null : (float*)At(logSumExp, 0, shape.QueryRows * sizeof(float)), Simd);
    }

    public override void AttentionBackward(in AttentionShape shape, DeviceBuffer outputGradient, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer output, DeviceBuffer logSumExp, DeviceBuffer delta, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv)
    {
        if (!shape.IsDense) throw new ArgumentException("the backward takes densely stored keys (KeyFirst 0, KeyRows = Keys)", nameof(shape));
        long queryBytes = shape.QueryElements * shape.DType.SizeOf(), keyBytes = shape.KeyElements * shape.DType.SizeOf();
        using var gradient = new Lease(outputGradient);
        using var queries = new Lease(q);
        using var keys = new Lease(k);
        using var values = new Lease(v);
        using var result = new Lease(output);
        using var lse = new Lease(logSumExp);
        using var deltas = new Lease(delta);
        using var queryGradient = new Lease(dq);
        using var keyGradient = new Lease(dk);
        using var valueGradient = new Lease(dv);
        AttentionKernels.Backward(shape, At(outputGradient, 0, queryBytes), At(q, 0, queryBytes), At(k, 0, keyBytes), At(v, 0, keyBytes),
            At(output, 0, queryBytes), (float*)At(logSumExp, 0, shape.QueryRows * sizeof(float)), (float*)At(delta, 0, shape.QueryRows * sizeof(float)),
            At(dq, 0, queryBytes), At(dk, 0, keyBytes), At(dv, 0, keyBytes), Simd);
    }

    public override void MomentColumnSums(DeviceBuffer batch, DType dtype, long batchRows, long columns, DeviceBuffer? rowIndex, long count,
        long chunkRows, DeviceBuffer sums, DeviceBuffer? rowFlags)
    {
        _ = Kernels.MomentsKernels.ColumnSums(dtype);  // refuses a dtype the devices have no kernel for
        long chunks = ColumnSumChunks(batchRows, columns, count, chunkRows, rowIndex is not null);
        using var input = new Lease(batch);
        using var index = rowIndex is null ? default : new Lease(rowIndex);
        using var output = new Lease(sums);
        using var flags = rowFlags is null ? default : new Lease(rowFlags);
        byte* x = At(batch, 0, checked(batchRows * columns * dtype.SizeOf()));
        long* rows = rowIndex is null ? null : (long*)At(rowIndex, 0, checked(count * sizeof(long)));
        float* pairs = (float*)At(sums, 0, checked(chunks * columns * 2 * sizeof(float)));
        uint* bad = rowFlags is null ? null : (uint*)At(rowFlags, 0, checked(batchRows * sizeof(uint)));
        if (bad is not null) NativeMemory.Clear(bad, (nuint)(batchRows * sizeof(uint)));
        MomentsKernels.ColumnSums(x, dtype, batchRows, columns, rows, count, chunkRows, pairs, bad);
    }

    public override void MomentCentre(DeviceBuffer batch, DType dtype, long batchRows, int rowElements, DeviceBuffer? rowIndex, long first,
        int taken, int column, int width, DeviceBuffer pivot, DeviceBuffer output)
    {
        _ = Kernels.MomentsKernels.Centre(dtype);
        CheckCentre(batchRows, rowElements, rowIndex is not null, first, taken, column, width);
        using var input = new Lease(batch);
        using var index = rowIndex is null ? default : new Lease(rowIndex);
        using var centre = new Lease(pivot);
        using var target = new Lease(output);
        byte* x = At(batch, 0, checked(batchRows * rowElements * dtype.SizeOf()));
        long* rows = rowIndex is null ? null : (long*)At(rowIndex, 0, checked((first + taken) * sizeof(long)));
        MomentsKernels.CentreRows(x, dtype, batchRows, rowElements, rows, first, taken, column, width,
            (float*)At(pivot, 0, (long)rowElements * sizeof(float)), (float*)At(output, 0, (long)taken * width * sizeof(float)));
    }

    public override void CompensatedAdd(DeviceBuffer hi, DeviceBuffer lo, DeviceBuffer addend, long count, bool start)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        using var high = new Lease(hi);
        using var low = new Lease(lo);
        using var term = new Lease(addend);
        long bytes = checked(count * sizeof(float));
        MomentsKernels.CompensatedAdd((float*)At(hi, 0, bytes), (float*)At(lo, 0, bytes), (float*)At(addend, 0, bytes), count, start);
    }

    /// <summary>The address of <paramref name="offset"/> in a buffer the caller holds a <see cref="Lease"/> on, after checking that <paramref name="length"/> bytes fit there.</summary>
    private static byte* At(DeviceBuffer buffer, long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > buffer.ByteCount - length)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"bytes [{offset}, {offset} + {length}) do not fit a buffer of {buffer.ByteCount}");
        return (byte*)buffer.DangerousGetHandle() + offset;
    }
}
