using System.Numerics;
using System.Runtime.InteropServices;

namespace NativeTensor.Training;

public static partial class StreamingPca
{
    /// <summary>2^-52, the spacing of doubles at 1.</summary>
    private static readonly double DoubleEpsilon = Math.ScaleB(1, -52);

    private static (double[] Values, double[,] Vectors) DirectlyFull(double[] a, int d, int k)
    {
        (double[] values, double[][] vectors) = Jacobi((double[])a.Clone(), d);
        return Result(values, vectors, d, k);
    }

    /// <summary>
    /// Cyclic Jacobi on a symmetric n×n matrix (row-major, destroyed): eigenvalues descending and unit eigenvectors, each
    /// pair sorted together (Rutishauser's rotation, as in Numerical Recipes' <c>jacobi</c>): the first three sweeps skip
    /// entries below a threshold, later ones zero an entry too small to change either diagonal value it sits between.
    /// </summary>
    private static (double[] Values, double[][] Vectors) Jacobi(double[] h, int n)
    {
        var v = new double[n][];
        for (int i = 0; i < n; i++) { v[i] = new double[n]; v[i][i] = 1; }   // v[c] is eigenvector c
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++) off += Math.Abs(h[p * n + q]);
            if (off == 0) break;
            double threshold = sweep < 3 ? 0.2 * off / ((double)n * n) : 0;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = h[p * n + q], app = h[p * n + p], aqq = h[q * n + q], g = 100 * Math.Abs(apq);
                    if (sweep > 3 && Math.Abs(app) + g == Math.Abs(app) && Math.Abs(aqq) + g == Math.Abs(aqq))
                    {
                        h[p * n + q] = h[q * n + p] = 0;
                        continue;
                    }
                    if (Math.Abs(apq) <= threshold) continue;
                    double theta = (aqq - app) / (2 * apq);
                    double t = theta == 0 ? 1
                        : Math.Abs(theta) > 1e150 ? 1 / (2 * theta)
                        : Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double cos = 1 / Math.Sqrt(t * t + 1), sin = t * cos;
                    for (int r = 0; r < n; r++)
                    {
                        double hrp = h[r * n + p], hrq = h[r * n + q];
                        h[r * n + p] = cos * hrp - sin * hrq;
                        h[r * n + q] = sin * hrp + cos * hrq;
                    }
                    for (int c = 0; c < n; c++)
                    {
                        double hpc = h[p * n + c], hqc = h[q * n + c];
                        h[p * n + c] = cos * hpc - sin * hqc;
                        h[q * n + c] = sin * hpc + cos * hqc;
                    }
                    h[p * n + q] = h[q * n + p] = 0;
                    for (int r = 0; r < n; r++)
                    {
                        double vp = v[p][r], vq = v[q][r];
                        v[p][r] = cos * vp - sin * vq;
                        v[q][r] = sin * vp + cos * vq;
                    }
                }
        }
        int[] order = [.. Enumerable.Range(0, n).OrderByDescending(i => h[i * n + i]).ThenBy(i => i)];
        return ([.. order.Select(i => h[i * n + i])], [.. order.Select(i => v[i])]);
    }

    /// <summary>The first k pairs, vectors normalised and signed (largest-magnitude component positive), as [k, d] rows.</summary>
    private static (double[] Values, double[,] Vectors) Result(double[] values, double[][] vectors, int d, int k)
    {
        var rows = new double[k, d];
        for (int i = 0; i < k; i++)
        {
            double[] vector = vectors[i];
            int largest = 0;
            for (int j = 1; j < d; j++)
                if (Math.Abs(vector[j]) > Math.Abs(vector[largest])) largest = j;
            double scale = Math.Sign(vector[largest]) / Math.Sqrt(Dot(vector, vector));
            for (int j = 0; j < d; j++) rows[i, j] = vector[j] * scale;
        }
        return (values[..k], rows);
    }

    private static double[][] Identity(int d)
    {
        var vectors = new double[d][];
        for (int i = 0; i < d; i++) { vectors[i] = new double[d]; vectors[i][i] = 1; }
        return vectors;
    }

    private static double[] Random(int d, SplitMix64 random)
    {
        var vector = new double[d];
        for (int i = 0; i < d; i++) vector[i] = random.NextSigned();
        return vector;
    }

    private static double[][] RandomBlock(int d, int p, SplitMix64 random) => [.. Enumerable.Range(0, p).Select(_ => Random(d, random))];

    private static double Frobenius(double[] a) => Math.Sqrt(Dot(a, a));

    private static double Trace(double[] a, int d)
    {
        double trace = 0;
        for (int i = 0; i < d; i++) trace += a[(long)i * d + i];
        return trace;
    }

    /// <summary>A times each column of the block (A row-major d×d), rows over the cores when large.</summary>
    private static double[][] Multiply(double[] a, int d, double[][] block)
    {
        var result = new double[block.Length][];
        for (int c = 0; c < block.Length; c++) result[c] = new double[d];
        void Row(int i)
        {
            ReadOnlySpan<double> row = a.AsSpan(i * d, d);
            for (int c = 0; c < block.Length; c++) result[c][i] = Dot(row, block[c]);
        }
        if ((long)d * d * block.Length < 1 << 20)
            for (int i = 0; i < d; i++) Row(i);
        else Parallel.For(0, d, Row);
        return result;
    }

    /// <summary><c>out[c] = Σ_r block[r] w[c][r]</c>: the block times the matrix whose columns are w's vectors.</summary>
    private static double[][] Combine(double[][] block, double[][] w, int d)
    {
        var result = new double[w.Length][];
        for (int c = 0; c < w.Length; c++)
        {
            result[c] = new double[d];
            for (int r = 0; r < block.Length; r++) Axpy(w[c][r], block[r], result[c]);
        }
        return result;
    }

    private static double Dot(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        double sum = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<double>.Count)
        {
            ReadOnlySpan<Vector<double>> xs = MemoryMarshal.Cast<double, Vector<double>>(x), ys = MemoryMarshal.Cast<double, Vector<double>>(y);
            Vector<double> total = Vector<double>.Zero;
            for (int v = 0; v < xs.Length; v++) total += xs[v] * ys[v];
            sum = Vector.Sum(total);
            i = xs.Length * Vector<double>.Count;
        }
        for (; i < x.Length; i++) sum += x[i] * y[i];
        return sum;
    }

    /// <summary><c>y += alpha x</c>.</summary>
    private static void Axpy(double alpha, double[] x, double[] y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && y.Length >= Vector<double>.Count)
        {
            ReadOnlySpan<Vector<double>> xs = MemoryMarshal.Cast<double, Vector<double>>(x.AsSpan());
            Span<Vector<double>> ys = MemoryMarshal.Cast<double, Vector<double>>(y.AsSpan());
            var a = new Vector<double>(alpha);
            for (int v = 0; v < ys.Length; v++) ys[v] += a * xs[v];
            i = ys.Length * Vector<double>.Count;
        }
        for (; i < y.Length; i++) y[i] += alpha * x[i];
    }

    private static double Square(double x) => x * x;

    /// <summary>SplitMix64 (Steele, Lea and Flood): a fixed, portable stream, so start blocks are the same everywhere.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        /// <summary>Uniform in [-1, 1).</summary>
        public double NextSigned()
        {
            ulong z = _state += 0x9E37_79B9_7F4A_7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
            z ^= z >> 31;
            return (z >> 11) * Math.ScaleB(1, -52) - 1;
        }
    }
}
