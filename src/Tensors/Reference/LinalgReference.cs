namespace NativeTensor.Reference;

/// <summary>
/// The specification of <see cref="Linalg"/> as plain loops in double over the inputs' exact values (16-bit inputs
/// widen exactly, so a Float16 or BFloat16 matrix means the binary32 values it holds). Every product of two binary32
/// values is exact in double and a sum of k of them is within k * 2^-53 of exact, far below any binary32 rounding,
/// so this is the value every backend's Float32 accumulation approximates.
/// </summary>
/// <remarks>
/// Beside each result the reference returns <c>Σ_p |op(A)_ip| |op(B)_pj|</c>: the magnitude an inner product's
/// rounding error scales with (Higham, <i>Accuracy and Stability of Numerical Algorithms</i>, 2nd ed., §3.1), from
/// which the tests derive each element's tolerance instead of picking one.
/// </remarks>
public static class LinalgReference
{
    /// <summary>A result and, element for element, the sum of absolute products that bounds its rounding error.</summary>
    public readonly record struct Result(double[] C, double[] AbsoluteProducts);

    /// <summary>The exact values of a buffer of Float32, Float16 or BFloat16 bits.</summary>
    public static double[] Values(ReadOnlySpan<byte> bytes, DType dtype)
    {
        int size = dtype.SizeOf();
        var values = new double[bytes.Length / size];
        for (int i = 0; i < values.Length; i++)
        {
            uint single = dtype switch
            {
                DType.Float32 => BitConverter.ToUInt32(bytes.Slice(i * 4, 4)),
                DType.Float16 => PrecisionReference.HalfToSingle(BitConverter.ToUInt16(bytes.Slice(i * 2, 2))),
                DType.BFloat16 => PrecisionReference.BFloat16ToSingle(BitConverter.ToUInt16(bytes.Slice(i * 2, 2))),
                _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a floating-point DType"),
            };
            values[i] = BitConverter.UInt32BitsToSingle(single);
        }
        return values;
    }

    /// <summary>
    /// <c>C = alpha * op(A) * op(B) + beta * C</c>, row-major: op(A) is [m, k] (<paramref name="a"/> is stored [k, m]
    /// when <paramref name="transposeA"/>), op(B) is [k, n] (<paramref name="b"/> is stored [n, k] when
    /// <paramref name="transposeB"/>). With <paramref name="beta"/> 0 the old C is not read (it may be null or hold NaN).
    /// </summary>
    public static Result MatMul(double[] a, bool transposeA, double[] b, bool transposeB, int m, int n, int k,
        double alpha, double beta, double[]? c)
    {
        Check(a.LongLength == (long)m * k, nameof(a));
        Check(b.LongLength == (long)k * n, nameof(b));
        Check(beta == 0 || c?.LongLength == (long)m * n, nameof(c));
        var result = new double[(long)m * n];
        var magnitude = new double[(long)m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, absolute = 0;
                for (int p = 0; p < k; p++)
                {
                    double product = (transposeA ? a[(long)p * m + i] : a[(long)i * k + p]) * (transposeB ? b[(long)j * k + p] : b[(long)p * n + j]);
                    sum += product;
                    absolute += Math.Abs(product);
                }
                long at = (long)i * n + j;
                result[at] = beta == 0 ? alpha * sum : alpha * sum + beta * c![at];
                magnitude[at] = absolute;
            }
        return new Result(result, magnitude);
    }

    /// <summary>
    /// <c>C = alpha * A^T * A + beta * C</c> for A [<paramref name="rows"/>, <paramref name="d"/>] row-major, C [d, d].
    /// The result is symmetric by definition: beta scales the old C's lower triangle, <c>C[max(i, j), min(i, j)]</c>,
    /// as BLAS <c>ssyrk</c> with uplo 'L' does (the upper triangle is never read, so a non-symmetric C still gives a
    /// symmetric result); with beta 0 nothing is read.
    /// </summary>
    public static Result Syrk(double[] a, int rows, int d, double alpha, double beta, double[]? c)
    {
        Check(a.LongLength == (long)rows * d, nameof(a));
        Check(beta == 0 || c?.LongLength == (long)d * d, nameof(c));
        var result = new double[(long)d * d];
        var magnitude = new double[(long)d * d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j <= i; j++)
            {
                double sum = 0, absolute = 0;
                for (int p = 0; p < rows; p++)
                {
                    double product = a[(long)p * d + i] * a[(long)p * d + j];
                    sum += product;
                    absolute += Math.Abs(product);
                }
                long lower = (long)i * d + j, upper = (long)j * d + i;
                result[lower] = result[upper] = beta == 0 ? alpha * sum : alpha * sum + beta * c![lower];
                magnitude[lower] = magnitude[upper] = absolute;
            }
        return new Result(result, magnitude);
    }

    private static void Check(bool holds, string name)
    {
        if (!holds) throw new ArgumentException($"{name} does not hold the elements its shape needs", name);
    }
}
