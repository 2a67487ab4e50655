using System.Numerics;
using System.Runtime.InteropServices;

namespace NativeTensor.Cpu;

/// <summary>
/// The host-side passes of <see cref="NativeTensor.Moments"/>'s batch pipeline: column sums in double, centring in
/// Float32 against a Float32 mean, and the widening accumulation of each Float32 block scatter into double. Each is a
/// single pass over its data with <see cref="Vector{T}"/> lanes and a scalar tail; the order of additions into any one
/// double is fixed (row by row), so results do not depend on the vector width or the core count.
/// </summary>
internal static class MomentsKernels
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
}
