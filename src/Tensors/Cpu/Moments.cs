using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NativeTensor.Cpu;

/// <summary>
/// The host-side passes of <see cref="NativeTensor.Moments"/>'s batch pipeline: column sums in double, centring in
/// Float32 against a Float32 mean, and the widening accumulation of each Float32 block scatter into double. Each is a
/// single pass over its data with <see cref="Vector{T}"/> lanes and a scalar tail; the order of additions into any one
/// double is fixed (row by row), so results do not depend on the vector width or the core count. Below them, the CPU
/// backend's versions of the device pipeline's kernels (<c>kernels/moments.cl</c>): plain scalar loops in the kernels'
/// operation order, so the CPU gives the devices' bits and the backend tests can compare them exactly.
/// </summary>
internal static unsafe class MomentsKernels
{
    /// <summary><c>sums[j] += (double)row[j]</c>.</summary>
    public static void AddTo(ReadOnlySpan<float> row, Span<double> sums)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ReadOnlySpan<Vector<float>> lanes = MemoryMarshal.Cast<float, Vector<float>>(row);
            Span<Vector<double>> totals = MemoryMarshal.Cast<double, Vector<double>>(sums[..(lanes.Length * Vector<float>.Count)]);
            for (int v = 0; v < lanes.Length; v++)
            {
                Vector.Widen(lanes[v], out Vector<double> low, out Vector<double> high);
                totals[2 * v] += low;
                totals[2 * v + 1] += high;
            }
            j = lanes.Length * Vector<float>.Count;
        }
        for (; j < row.Length; j++) sums[j] += row[j];
    }

    /// <summary>
    /// <c>centred[j] = row[j] - mean[j]</c> in Float32 (one correctly rounded subtraction; exact when the two are
    /// within a factor of 2 of each other, Sterbenz), and <c>sums[j] += centred[j]</c> in double.
    /// </summary>
    public static void Centre(ReadOnlySpan<float> row, ReadOnlySpan<float> mean, Span<float> centred, Span<double> sums)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ReadOnlySpan<Vector<float>> x = MemoryMarshal.Cast<float, Vector<float>>(row);
            ReadOnlySpan<Vector<float>> m = MemoryMarshal.Cast<float, Vector<float>>(mean);
            Span<Vector<float>> y = MemoryMarshal.Cast<float, Vector<float>>(centred);
            Span<Vector<double>> totals = MemoryMarshal.Cast<double, Vector<double>>(sums[..(x.Length * Vector<float>.Count)]);
            for (int v = 0; v < x.Length; v++)
            {
                Vector<float> difference = x[v] - m[v];
                y[v] = difference;
                Vector.Widen(difference, out Vector<double> low, out Vector<double> high);
                totals[2 * v] += low;
                totals[2 * v + 1] += high;
            }
            j = x.Length * Vector<float>.Count;
        }
        for (; j < row.Length; j++)
        {
            float difference = row[j] - mean[j];
            centred[j] = difference;
            sums[j] += difference;
        }
    }

    /// <summary>Whether every element is finite (no NaN, no ±Inf): <c>x - x</c> is 0 exactly for finite x and NaN otherwise.</summary>
    public static bool AllFinite(ReadOnlySpan<float> row)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ReadOnlySpan<Vector<float>> x = MemoryMarshal.Cast<float, Vector<float>>(row);
            for (int v = 0; v < x.Length; v++)
                if (!Vector.EqualsAll(x[v] - x[v], Vector<float>.Zero)) return false;
            j = x.Length * Vector<float>.Count;
        }
        for (; j < row.Length; j++)
            if (!float.IsFinite(row[j])) return false;
        return true;
    }

    /// <summary>
    /// <c>total[j, k] += (double)block[j, k]</c> for the upper triangle <c>k &gt;= j</c> of two [d, d] matrices, rows
    /// spread over the cores when the triangle is large (each row is one thread's, so the result is the same).
    /// </summary>
    public static void AddUpperTriangle(ReadOnlySpan<float> block, Span<double> total, int d)
    {
        if ((long)d * d < 1 << 16)
        {
            for (int j = 0; j < d; j++) AddTo(block.Slice(j * d + j, d - j), total.Slice(j * d + j, d - j));
            return;
        }
        unsafe
        {
            fixed (float* source = block)
            fixed (double* destination = total)
            {
                nint s = (nint)source, t = (nint)destination;
                Parallel.For(0, d, j => AddTo(
                    new ReadOnlySpan<float>((float*)s + (long)j * d + j, d - j), new Span<double>((double*)t + (long)j * d + j, d - j)));
            }
        }
    }

    /// <summary>
    /// <c>row[k] -= (n c_j) (sums[k] / n)</c>: step 4 of the batch pipeline along one row of the upper triangle, with
    /// <paramref name="scaledMean"/> = <c>n c_j</c>; the same operations in the same order as the scalar formula, so the
    /// lanes change no bit.
    /// </summary>
    public static void SubtractOuter(Span<double> row, double scaledMean, ReadOnlySpan<double> sums, double n)
    {
        int k = 0;
        if (Vector.IsHardwareAccelerated)
        {
            Span<Vector<double>> r = MemoryMarshal.Cast<double, Vector<double>>(row);
            ReadOnlySpan<Vector<double>> x = MemoryMarshal.Cast<double, Vector<double>>(sums[..(r.Length * Vector<double>.Count)]);
            Vector<double> scale = new(scaledMean), count = new(n);
            for (int v = 0; v < r.Length; v++) r[v] -= scale * (x[v] / count);
            k = r.Length * Vector<double>.Count;
        }
        for (; k < row.Length; k++) row[k] -= scaledMean * (sums[k] / n);
    }

    /// <summary>
    /// One row of a small batch's group merged into the state: <c>m = (0 + (double)scatter[k]) - (n c_j) (sums[k] / n)</c>
    /// (step 4 on a block scatter added into zeros), clamped at 0 on the diagonal (k = 0), then <c>state[k] += m +
    /// δ_j δ[k] w</c> (Chan's merge), or <c>state[k] = m</c> when the state held no rows (<paramref name="first"/>). The
    /// operations and their order are those of the separate passes, so the lanes change no bit; the explicit 0 + keeps
    /// what adding into zeros does to a -0.
    /// </summary>
    // Fully optimised from its first call: tier-0 code of the generic Vector.Load and Store runs several times slower.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FoldRow(ReadOnlySpan<float> scatter, Span<double> state, double scaledMean, ReadOnlySpan<double> sums, double n,
        double deltaJ, ReadOnlySpan<double> delta, double weight, bool first)
    {
        double diagonal = (0.0 + scatter[0]) - scaledMean * (sums[0] / n);
        // Rounding cannot make a sum of squares negative; a zero-variance feature could otherwise show -1e-20.
        if (diagonal < 0) diagonal = 0;
        state[0] = first ? diagonal : state[0] + (diagonal + deltaJ * delta[0] * weight);
        int k = 1;
        if (Vector.IsHardwareAccelerated && !first)
        {
            Vector<double> scale = new(scaledMean), count = new(n), dj = new(deltaJ), w = new(weight);
            int half = Vector<double>.Count;
            fixed (float* s = scatter)
            fixed (double* to = state, x = sums, dk = delta)
            {
                for (; k + 2 * half <= state.Length; k += 2 * half)
                {
                    Vector.Widen(Vector.Load(s + k), out Vector<double> low, out Vector<double> high);
                    Vector<double> m = (Vector<double>.Zero + low) - scale * (Vector.Load(x + k) / count);
                    Vector.Store(Vector.Load(to + k) + (m + dj * Vector.Load(dk + k) * w), to + k);
                    m = (Vector<double>.Zero + high) - scale * (Vector.Load(x + k + half) / count);
                    Vector.Store(Vector.Load(to + k + half) + (m + dj * Vector.Load(dk + k + half) * w), to + k + half);
                }
            }
        }
        for (; k < state.Length; k++)
        {
            double m = (0.0 + scatter[k]) - scaledMean * (sums[k] / n);
            state[k] = first ? m : state[k] + (m + deltaJ * delta[k] * weight);
        }
    }

    /// <summary>
    /// <c>state[k] += part[k] + δ_j δ[k] w</c>: Chan's merge along one row of the upper triangle, the scalar formula's
    /// operations in its order.
    /// </summary>
    public static void AddMerged(Span<double> state, ReadOnlySpan<double> part, double deltaJ, ReadOnlySpan<double> delta, double weight)
    {
        int k = 0;
        if (Vector.IsHardwareAccelerated)
        {
            Span<Vector<double>> s = MemoryMarshal.Cast<double, Vector<double>>(state);
            int lanes = s.Length * Vector<double>.Count;
            ReadOnlySpan<Vector<double>> p = MemoryMarshal.Cast<double, Vector<double>>(part[..lanes]);
            ReadOnlySpan<Vector<double>> x = MemoryMarshal.Cast<double, Vector<double>>(delta[..lanes]);
            Vector<double> dj = new(deltaJ), w = new(weight);
            for (int v = 0; v < s.Length; v++) s[v] += p[v] + dj * x[v] * w;
            k = lanes;
        }
        for (; k < state.Length; k++) state[k] += part[k] + deltaJ * delta[k] * weight;
    }

    /// <summary>Knuth's TwoSum: returns fl(a + b) and sets <paramref name="error"/> so that a + b = result + error exactly (no overflow).</summary>
    public static float TwoSum(float a, float b, out float error)
    {
        // .NET evaluates float arithmetic in binary32 and never contracts or reassociates it, as ADD_RN promises on devices.
        float t = a + b;
        float z = t - a;
        error = (a - (t - z)) + (b - z);
        return t;
    }

    /// <summary>
    /// <c>moments_column_sums_*</c> of <c>kernels/moments.cl</c> on the host: per chunk of <paramref name="chunkRows"/>
    /// rows and per column, the TwoSum cascade into (hi, lo) pairs; flags set for rows with NaN or ±Inf when asked
    /// (<paramref name="rowFlags"/> already zeroed). A listed row outside the batch counts as NaN and is not read.
    /// </summary>
    public static void ColumnSums(byte* batch, DType dtype, long batchRows, long columns, long* rowIndex, long count, long chunkRows,
        float* sums, uint* rowFlags)
    {
        long chunks = count / chunkRows + (count % chunkRows == 0 ? 0 : 1);
        for (long c = 0; c < chunks; c++)
        {
            long end = Math.Min(count, (c + 1) * chunkRows);
            for (long e = 0; e < columns; e++)
            {
                float hi = 0, lo = 0;
                for (long r = c * chunkRows; r < end; r++)
                {
                    long row = rowIndex is null ? r : rowIndex[r];
                    float value = float.NaN;
                    if (row >= 0 && row < batchRows)
                    {
                        value = Widen(batch, dtype, row * columns + e);
                        if (rowFlags is not null && !float.IsFinite(value)) rowFlags[row] = 1;
                    }
                    hi = TwoSum(hi, value, out float error);
                    lo += error;
                }
                sums[2 * (c * columns + e)] = hi;
                sums[2 * (c * columns + e) + 1] = lo;
            }
        }
    }

    /// <summary><c>moments_centre_*</c> on the host: <c>output[r, j] = x[row(r), column + j] - pivot[column + j]</c> in Float32.</summary>
    public static void CentreRows(byte* batch, DType dtype, long batchRows, int rowElements, long* rowIndex, long first, int taken,
        int column, int width, float* pivot, float* output)
    {
        for (long r = 0; r < taken; r++)
        {
            long row = rowIndex is null ? first + r : rowIndex[first + r];
            bool inRange = row >= 0 && row < batchRows;
            for (long j = 0; j < width; j++)
                output[r * width + j] = inRange ? Widen(batch, dtype, row * rowElements + column + j) - pivot[column + j] : float.NaN;
        }
    }

    /// <summary><c>moments_compensated_add</c> on the host: <c>(hi, lo) += addend</c> by TwoSum, element by element.</summary>
    public static void CompensatedAdd(float* hi, float* lo, float* addend, long count, bool start)
    {
        for (long i = 0; i < count; i++)
        {
            if (start)
            {
                hi[i] = addend[i];
                lo[i] = 0;
                continue;
            }
            hi[i] = TwoSum(hi[i], addend[i], out float error);
            lo[i] += error;
        }
    }

    /// <summary>Element <paramref name="index"/> of a float array of <paramref name="dtype"/>, widened exactly to Float32.</summary>
    private static float Widen(byte* data, DType dtype, long index) => dtype switch
    {
        DType.Float32 => ((float*)data)[index],
        DType.Float16 => BitConverter.UInt32BitsToSingle(PrecisionKernels.HalfToSingle(((ushort*)data)[index])),
        _ => BitConverter.UInt32BitsToSingle((uint)((ushort*)data)[index] << 16),
    };
}
