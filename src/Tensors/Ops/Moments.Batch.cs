using System.Runtime.InteropServices;
using NativeTensor.Cpu;

namespace NativeTensor;

public sealed partial class Moments
{
    /// <summary>Float32 elements of the batch read to the host at a time (64 MB): larger batches stream through in chunks.</summary>
    private const int ChunkElements = 1 << 24;

    /// <summary>
    /// One batch's own moments, in the state's layout: rows kept, rows skipped, means, scatters; or, when
    /// <paramref name="Folded"/>, a small batch whose means and scatters were merged into the state as they were made
    /// (<see cref="FoldGroup"/>), leaving Update only the counts (Mean and M2 then unused).
    /// </summary>
    private readonly record struct BatchMoments(long Count, long Skipped, double[] Mean, double[] M2, bool Folded = false);

    /// <summary>
    /// The batch's own centred moments, computed without touching the state (steps 1 to 4 of the class remarks). In full
    /// mode on an OpenCL or CUDA device, on that device (<see cref="SummariseOnDevice"/>); otherwise two passes over the
    /// rows on the host, chunk by chunk: column sums in double; then, per group, centring in Float32 and the blocked Syrk
    /// (or, diagonal-only, the squares in double). The one exception, on the host in full mode: a batch whose kept rows
    /// fit one Syrk block is folded into the state's means and scatters as it goes (<see cref="FoldGroup"/>), once its
    /// counts have been checked, which is the last thing that can fail; Update then adds only the counts.
    /// </summary>
    private BatchMoments Summarise(Tensor batch)
    {
        if (!DiagonalOnly && batch.Device.Kind != DeviceKind.Cpu) return SummariseOnDevice(batch);
        long n = batch.Shape[0];
        int g = Groups, d = Features, rowElements = g * d;
        using var rows = new BatchRows(batch, rowElements);
        // Whole blocks per chunk where a chunk holds at least one block; at least one row per chunk whatever its size.
        int chunkRows = Math.Max(1, ChunkElements / rowElements);
        if (chunkRows >= ScatterBlockRows) chunkRows -= chunkRows % ScatterBlockRows;
        chunkRows = (int)Math.Min(n, chunkRows);

        // Pass 1: which rows count, and their column sums.
        bool[]? kept = SkipsNonFiniteRows ? new bool[n] : null;
        var sums = new double[rowElements];
        long count = 0;
        for (long first = 0; first < n; first += chunkRows)
        {
            int length = (int)Math.Min(chunkRows, n - first);
            ReadOnlySpan<float> chunk = rows.Read(first, length);
            for (int i = 0; i < length; i++)
            {
                ReadOnlySpan<float> row = chunk.Slice(i * rowElements, rowElements);
                if (kept is not null && !(kept[first + i] = MomentsKernels.AllFinite(row))) continue;
                MomentsKernels.AddTo(row, sums);
                count++;
            }
        }
        var mean = new double[rowElements];
        if (count == 0) return new BatchMoments(0, n, mean, new double[_m2.Length]);
        for (int e = 0; e < rowElements; e++) mean[e] = sums[e] / count;

        // A small batch (every kept row in one block of one chunk) is merged into the state group by group as its one
        // Syrk per group comes out: no batch-sized scatter in double, and each group's triangle read and written once.
        // Its counts are checked first, as Update would: after this nothing can fail.
        if (!DiagonalOnly && n <= chunkRows && count <= ScatterBlockRows)
        {
            _ = checked(NonFiniteRows + (n - count));
            _ = checked(Count + count);
            ScatterInBlocks(batch.Device, rows, n, chunkRows, kept, count, mean, m2: null);
            return new BatchMoments(count, n - count, mean, [], Folded: true);
        }
        var m2 = new double[_m2.Length];
        if (DiagonalOnly) SquaresInDouble(rows, n, chunkRows, kept, mean, m2);
        else ScatterInBlocks(batch.Device, rows, n, chunkRows, kept, count, mean, m2);
        return new BatchMoments(count, n - count, mean, m2);
    }

    /// <summary>
    /// Full mode on the CPU, steps 2 to 4: centre against the Float32 mean, Syrk blocks of rows, add each block into
    /// double, correct. The blocks and the scatter are CPU tensors, so the Syrk reads and writes host memory in place.
    /// </summary>
    private void ScatterInBlocks(Device device, BatchRows rows, long n, int chunkRows, bool[]? kept, long count, double[] mean, double[]? m2)
    {
        int g = Groups, d = Features, rowElements = g * d;
        var pivot = new float[rowElements];
        for (int e = 0; e < rowElements; e++) pivot[e] = (float)mean[e];
        var centredSums = new double[rowElements];
        using Tensor scatter = Tensor.Allocate(DType.Float32, [d, d], device);
        using Tensor full = Tensor.Allocate(DType.Float32, [ScatterBlockRows, d], device);
        var picked = new int[ScatterBlockRows];

        for (long first = 0; first < n; first += chunkRows)
        {
            int length = (int)Math.Min(chunkRows, n - first);
            ReadOnlySpan<float> chunk = rows.Read(first, length);
            for (int i = 0; i < length;)
            {
                // The next block: up to ScatterBlockRows kept rows of this chunk.
                int taken = 0;
                for (; i < length && taken < ScatterBlockRows; i++)
                    if (kept is null || kept[first + i]) picked[taken++] = i;
                if (taken == 0) continue;
                Tensor block = taken == ScatterBlockRows ? full : Tensor.Allocate(DType.Float32, [taken, d], device);
                try
                {
                    for (int group = 0; group < g; group++)
                    {
                        Span<float> centred = block.AsSpan<float>();
                        ReadOnlySpan<float> groupPivot = pivot.AsSpan(group * d, d);
                        Span<double> groupSums = centredSums.AsSpan(group * d, d);
                        for (int r = 0; r < taken; r++)
                            MomentsKernels.Centre(chunk.Slice(picked[r] * rowElements + group * d, d), groupPivot, centred.Slice(r * d, d), groupSums);
                        Linalg.Syrk(block, c: scatter);
                        if (m2 is null) FoldGroup(group, scatter, centredSums, count, mean);
                        else MomentsKernels.AddUpperTriangle(scatter.AsSpan<float>(), m2.AsSpan((int)((long)group * d * d), d * d), d);
                    }
                }
                finally
                {
                    if (block != full) block.Dispose();
                }
            }
        }

        if (m2 is null) return;
        // Step 4: the rows were centred on the rounded mean, and c is their exact offset from their own mean, so
        // M2 = S - n c c^T. The upper triangle only, which is all the state keeps.
        for (int group = 0; group < g; group++)
        {
            int at = group * d;
            long origin = (long)group * d * d;
            for (int j = 0; j < d; j++)
            {
                int jj = (int)(origin + (long)j * d + j);
                double cj = centredSums[at + j] / count;
                MomentsKernels.SubtractOuter(m2.AsSpan(jj, d - j), count * cj, centredSums.AsSpan(at + j, d - j), count);
                // Rounding cannot make a sum of squares negative; a zero-variance feature could otherwise show -1e-20.
                if (m2[jj] < 0) m2[jj] = 0;
            }
        }
    }

    /// <summary>
    /// A small batch's group merged straight into the state: step 4 on the group's one block scatter, then Chan's merge,
    /// element by element in one pass over the group's triangle. The operations are those of step 4 followed by
    /// <see cref="Combine"/>, in their order, so the state holds the same bits either way.
    /// </summary>
    private void FoldGroup(int group, Tensor scatter, double[] centredSums, long countB, double[] meanB)
    {
        int d = Features, at = group * d;
        long countA = Count, total = countA + countB;
        double share = (double)countB / total, weight = (double)countA * countB / total;
        var delta = new double[d];
        for (int j = 0; j < d; j++)
        {
            if (countA == 0)
            {
                _mean[at + j] = meanB[at + j];
                continue;
            }
            delta[j] = meanB[at + j] - _mean[at + j];
            _mean[at + j] += delta[j] * share;
        }
        long origin = (long)group * d * d;
        void Row(int j)
        {
            double cj = centredSums[at + j] / countB;
            MomentsKernels.FoldRow(scatter.AsReadOnlySpan<float>().Slice(j * d + j, d - j), _m2.AsSpan((int)(origin + (long)j * d + j), d - j),
                countB * cj, centredSums.AsSpan(at + j, d - j), countB, delta[j], delta.AsSpan(j, d - j), weight, first: countA == 0);
        }
        // Rows spread over the cores when the triangle is large, as AddUpperTriangle does: each row is one thread's, so the
        // bits do not depend on the split; and the cores that ran the Syrk just before stay awake for the next one.
        if ((long)d * d < 1 << 16)
            for (int j = 0; j < d; j++) Row(j);
        else Parallel.For(0, d, Row);
    }

    /// <summary>Diagonal-only mode: <c>M2[j] = Σ (x - μ)²</c> in double on the host, the reference's own two passes.</summary>
    private void SquaresInDouble(BatchRows rows, long n, int chunkRows, bool[]? kept, double[] mean, double[] m2)
    {
        int rowElements = Groups * Features;
        for (long first = 0; first < n; first += chunkRows)
        {
            int length = (int)Math.Min(chunkRows, n - first);
            ReadOnlySpan<float> chunk = rows.Read(first, length);
            for (int i = 0; i < length; i++)
            {
                if (kept is not null && !kept[first + i]) continue;
                ReadOnlySpan<float> row = chunk.Slice(i * rowElements, rowElements);
                for (int e = 0; e < rowElements; e++)
                {
                    double centred = row[e] - mean[e];
                    m2[e] += centred * centred;
                }
            }
        }
    }

    /// <summary>
    /// The batch's rows as Float32 on the host, a chunk at a time: a Float32 CPU tensor is read in place; anything else is
    /// copied (and widened, exactly) into one reusable host buffer, and a chunk asked for twice in a row is read once.
    /// </summary>
    private sealed class BatchRows : IDisposable
    {
        private readonly Tensor _batch;
        private readonly int _rowElements;
        private bool _held;   // a reference on the batch's buffer while spans of it are read in place (a Lease, held across calls)
        private float[]? _buffer;
        private byte[]? _raw;
        private long _cachedFirst = -1;
        private int _cachedLength;

        public BatchRows(Tensor batch, int rowElements)
        {
            _batch = batch;
            _rowElements = rowElements;
            // A CPU Float32 batch is read in place: a Dispose of the tensor on another thread must not free it meanwhile.
            _batch.Buffer.DangerousAddRef(ref _held);
        }

        public ReadOnlySpan<float> Read(long first, int length)
        {
            long elements = (long)length * _rowElements, offset = first * _rowElements * _batch.DType.SizeOf();
            int bytes = checked((int)(elements * _batch.DType.SizeOf()));
            if (_batch.Device.Kind == DeviceKind.Cpu && _batch.DType == DType.Float32)
                return MemoryMarshal.Cast<byte, float>(Tensor.CpuBytes(_batch.Buffer, offset, bytes));
            _buffer ??= new float[elements];
            Span<float> values = _buffer.AsSpan(0, (int)elements);
            if (first == _cachedFirst && length == _cachedLength) return values;
            if (_batch.DType == DType.Float32)
                _batch.Device.Backend.Read(_batch.Buffer, offset, MemoryMarshal.AsBytes(values));
            else if (_batch.Device.Kind == DeviceKind.Cpu)
                Widen(Tensor.CpuBytes(_batch.Buffer, offset, bytes), values);
            else
            {
                _raw ??= new byte[bytes];
                _batch.Device.Backend.Read(_batch.Buffer, offset, _raw.AsSpan(0, bytes));
                Widen(_raw.AsSpan(0, bytes), values);
            }
            (_cachedFirst, _cachedLength) = (first, length);
            return values;
        }

        /// <summary>Float16 or BFloat16 to Float32, exact on bits.</summary>
        private unsafe void Widen(ReadOnlySpan<byte> source, Span<float> destination)
        {
            fixed (byte* from = source)
            fixed (float* to = destination)
                PrecisionKernels.ConvertSerial(from, _batch.DType, (byte*)to, DType.Float32, destination.Length, SimdWidths.Best);
        }

        public void Dispose()
        {
            (_buffer, _raw) = (null, null);
            if (_held) _batch.Buffer.DangerousRelease();
            _held = false;
        }
    }
}
