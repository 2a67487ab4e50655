using System.Runtime.InteropServices;
using NativeTensor.Runtime;

namespace NativeTensor;

public sealed partial class Moments
{
    /// <summary>
    /// Fewest rows per chunk of the device's column sums (<see cref="Backend.MomentColumnSums"/>): chunks of this many
    /// rows run side by side (one thread per column per chunk), and each chunk's TwoSum cascade is short, so its error
    /// bound γ_(m-1)² Σ|x| stays at γ_127² ≈ 5.7e-11 of Σ|x| until a batch passes 64 chunks of it.
    /// </summary>
    internal const int ColumnSumChunkRows = 128;

    /// <summary>Most chunks of the device's column sums: each chunk's pairs are read back (2 floats per column).</summary>
    internal const int MaxColumnSumChunks = 64;

    /// <summary>Bytes the last full-mode <see cref="Update"/> on an OpenCL or CUDA device copied from it to the host; for tests.</summary>
    internal long BytesReadBack { get; private set; }

    /// <summary>Rows per chunk of the device's column sums for <paramref name="rows"/> rows: at least 128, at most 64 chunks.</summary>
    internal static long ColumnSumRows(long rows) => Math.Max(ColumnSumChunkRows, (rows + MaxColumnSumChunks - 1) / MaxColumnSumChunks);

    /// <summary>
    /// Full mode with the batch on an OpenCL or CUDA device: steps 1 to 4 of the class remarks without moving the batch.
    /// Reads back only the column-sum pairs (at most 64 x 2 floats per column), the row flags when skipping non-finite
    /// rows (one uint per row), and each group's (hi, lo) scatter pair once (2 d² floats).
    /// </summary>
    private BatchMoments SummariseOnDevice(Tensor batch)
    {
        long n = batch.Shape[0];
        int g = Groups, d = Features, rowElements = g * d;
        Backend backend = batch.Device.Backend;
        DType dtype = batch.DType;
        long chunkRows = ColumnSumRows(n);
        long chunks = (n + chunkRows - 1) / chunkRows;
        long readBack = 0;
        DeviceBuffer? index = null;
        try
        {
            // Step 1: compensated Float32 column sums on the device; the kept rows' index list when rows are skipped.
            long count = n;
            using DeviceBuffer sums = backend.Allocate(checked(chunks * rowElements * 2 * sizeof(float)));
            using (DeviceBuffer? flags = SkipsNonFiniteRows ? backend.Allocate(checked(n * sizeof(uint))) : null)
            {
                backend.MomentColumnSums(batch.Buffer, dtype, n, rowElements, null, n, chunkRows, sums, flags);
                if (flags is not null)
                {
                    long[] kept = KeptRows(backend, flags, n, ref readBack);
                    count = kept.Length;
                    if (count == 0)
                    {
                        BytesReadBack = readBack;
                        return new BatchMoments(0, n, new double[rowElements], new double[_m2.Length]);
                    }
                    if (count < n)
                    {
                        // The sums included the skipped rows: sum again over the kept ones only (fewer rows, never more chunks).
                        index = backend.Allocate(checked(count * sizeof(long)));
                        backend.Write(index, 0, MemoryMarshal.AsBytes(kept.AsSpan()));
                        chunkRows = ColumnSumRows(count);
                        chunks = (count + chunkRows - 1) / chunkRows;
                        backend.MomentColumnSums(batch.Buffer, dtype, n, rowElements, index, count, chunkRows, sums, null);
                    }
                }
            }
            var pairs = new float[chunks * rowElements * 2];
            ReadInto(backend, sums, pairs, ref readBack);
            var mean = new double[rowElements];
            for (long c = 0; c < chunks; c++)
                for (int e = 0; e < rowElements; e++)
                {
                    long at = 2 * (c * rowElements + e);
                    mean[e] += (double)pairs[at] + pairs[at + 1];   // hi + lo is exact in double (bar a u_double rounding)
                }
            for (int e = 0; e < rowElements; e++) mean[e] /= count;

            // Steps 2 and 3: per group, blocks of rows centred on the device, Syrk'd, added into the (hi, lo) pair.
            var pivot = new float[rowElements];
            for (int e = 0; e < rowElements; e++) pivot[e] = (float)mean[e];
            var m2 = new double[_m2.Length];
            using DeviceBuffer pivotOnDevice = backend.Allocate((long)rowElements * sizeof(float));
            backend.Write(pivotOnDevice, 0, MemoryMarshal.AsBytes(pivot.AsSpan()));
            long square = (long)d * d;
            using DeviceBuffer block = backend.Allocate((long)ScatterBlockRows * d * sizeof(float));
            using DeviceBuffer scatter = backend.Allocate(square * sizeof(float));
            using DeviceBuffer hi = backend.Allocate(square * sizeof(float));
            using DeviceBuffer lo = backend.Allocate(square * sizeof(float));
            var hostHi = new float[square];
            var hostLo = new float[square];
            for (int group = 0; group < g; group++)
            {
                for (long first = 0; first < count; first += ScatterBlockRows)
                {
                    int taken = (int)Math.Min(ScatterBlockRows, count - first);
                    backend.MomentCentre(batch.Buffer, dtype, n, rowElements, index, first, taken, group * d, d, pivotOnDevice, block);
                    // The backend's Syrk straight on the block's first rows: a short last block needs no tensor of its own.
                    backend.Syrk(block, DType.Float32, taken, d, scatter, 1, 0);
                    backend.CompensatedAdd(hi, lo, scatter, square, start: first == 0);
                }
                ReadInto(backend, hi, hostHi, ref readBack);
                ReadInto(backend, lo, hostLo, ref readBack);
                Correct(group, mean, pivot, count, hostHi, hostLo, m2);
            }
            BytesReadBack = readBack;
            return new BatchMoments(count, n - count, mean, m2);
        }
        finally
        {
            index?.Dispose();
        }
    }

    /// <summary>
    /// Step 4 for one group on the device path: <c>M2 = (hi + lo) - n c c^T</c> with <c>c = μ - pivot</c>, the mean of the
    /// rows centred on the pivot, taken in double from the mean itself (exact: a double and its Float32 rounding are
    /// within a factor of 2, Sterbenz), rather than summed from the centred Float32 values as the host path does. The two
    /// differ only by the centring's own roundings, which the error bound already charges (class remarks).
    /// </summary>
    private void Correct(int group, double[] mean, float[] pivot, long count, float[] hi, float[] lo, double[] m2)
    {
        int d = Features, at = group * d;
        long origin = (long)group * d * d;
        for (int j = 0; j < d; j++)
        {
            double cj = mean[at + j] - pivot[at + j];
            for (int k = j; k < d; k++)
            {
                int jk = j * d + k;
                double value = ((double)hi[jk] + lo[jk]) - count * cj * (mean[at + k] - pivot[at + k]);
                if (k == j && value < 0) value = 0;   // as on the host: rounding cannot make a sum of squares negative
                m2[origin + jk] = value;   // the upper triangle only, which is all the state keeps
            }
        }
    }

    /// <summary>The rows whose flag the column sums left at 0, in order; reads the n flags back once.</summary>
    private static long[] KeptRows(Backend backend, DeviceBuffer flags, long n, ref long readBack)
    {
        var flagged = new uint[n];
        ReadInto(backend, flags, flagged, ref readBack);
        var kept = new List<long>((int)Math.Min(n, int.MaxValue));
        for (long r = 0; r < n; r++)
            if (flagged[r] == 0) kept.Add(r);
        return [.. kept];
    }

    private static void ReadInto<T>(Backend backend, DeviceBuffer source, T[] destination, ref long readBack) where T : unmanaged
    {
        Span<byte> bytes = MemoryMarshal.AsBytes(destination.AsSpan());
        backend.Read(source, 0, bytes);
        readBack += bytes.Length;
    }
}
