using NativeTensor.Runtime;

namespace NativeTensor;

/// <summary>
/// Dense matrix products, the building blocks of covariance, distances and attention: <see cref="MatMul"/> (GEMM) and
/// <see cref="Syrk"/> (<c>A^T A</c>). Inputs are Float32, Float16 or BFloat16 (16-bit inputs widen exactly); products
/// accumulate in Float32 and results are Float32. <c>Reference/LinalgReference</c> is the math in double that
/// every backend approximates.
/// </summary>
public static class Linalg
{
    /// <summary>
    /// <c>C = alpha * op(A) * op(B) + beta * C</c>, where op(X) is X or its transpose: op(A) is [m, k], op(B) is [k, n],
    /// C is Float32 [m, n]. With <paramref name="beta"/> 0, C's old contents are never read (a NaN there does not
    /// propagate), as in BLAS.
    /// </summary>
    /// <param name="a">Rank 2, [m, k] or ([k, m] with <paramref name="transposeA"/>); Float32, Float16 or BFloat16.</param>
    /// <param name="b">Rank 2, [k, n] or ([n, k] with <paramref name="transposeB"/>); any float dtype, on a's device.</param>
    /// <param name="transposeA">Use A transposed.</param>
    /// <param name="transposeB">Use B transposed.</param>
    /// <param name="alpha">Multiplies the product; finite.</param>
    /// <param name="beta">Multiplies the old C; finite.</param>
    /// <param name="c">The Float32 [m, n] output to accumulate into or overwrite; null allocates one (beta must then be 0).</param>
    /// <returns><paramref name="c"/> when given, else a new tensor.</returns>
    /// <exception cref="ArgumentNullException">a or b is null.</exception>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    /// <exception cref="ArgumentException">A rank, dtype, device or inner dimension does not match, c does not match [m, n],
    /// c is a or b, or beta is not 0 without c.</exception>
    /// <exception cref="ArgumentOutOfRangeException">alpha or beta is not finite.</exception>
    public static Tensor MatMul(Tensor a, Tensor b, bool transposeA = false, bool transposeB = false,
        float alpha = 1, float beta = 0, Tensor? c = null)
    {
        Matrix(a, nameof(a));
        Matrix(b, nameof(b));
        Finite(alpha, nameof(alpha));
        Finite(beta, nameof(beta));
        if (b.Device != a.Device)
            throw new ArgumentException($"b is on {b.Device} but a is on {a.Device}", nameof(b));
        long m = transposeA ? a.Shape[1] : a.Shape[0], k = transposeA ? a.Shape[0] : a.Shape[1];
        long kb = transposeB ? b.Shape[1] : b.Shape[0], n = transposeB ? b.Shape[0] : b.Shape[1];
        if (k != kb)
            throw new ArgumentException(
                $"op(a) is [{m}, {k}] but op(b) is [{kb}, {n}]: the inner dimensions differ (a [{a.Shape[0]}, {a.Shape[1]}]{(transposeA ? " transposed" : "")}, " +
                $"b [{b.Shape[0]}, {b.Shape[1]}]{(transposeB ? " transposed" : "")})", nameof(b));
        Output(c, a, b, m, n, beta);
        Tensor result = c ?? Tensor.Allocate(DType.Float32, [m, n], a.Device);
        try
        {
            if (m > 0 && n > 0)
            {
                if (k == 0) Scale(result, beta, lowerOnly: false);
                else a.Device.Backend.MatMul(new MatMulShape(a.Buffer, a.DType, transposeA, b.Buffer, b.DType, transposeB, result.Buffer,
                    (int)m, (int)n, (int)k), alpha, beta);
            }
            return result;
        }
        catch when (c is null)
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The symmetric rank-k update <c>C = alpha * A^T * A + beta * C</c>: A is [n, d] (n rows of d features), C is Float32
    /// [d, d] and written in full, both triangles (the mirror images are bit-identical). The scatter matrix of centred
    /// rows, for covariance. With beta not 0 only the lower triangle of the old C is read (<c>C[max(i, j), min(i, j)]</c>
    /// scales into both C[i, j] and C[j, i], as BLAS <c>ssyrk</c> with uplo 'L'), so the result is symmetric even when
    /// the old C was not.
    /// </summary>
    /// <param name="a">Rank 2 [n, d]; Float32, Float16 or BFloat16.</param>
    /// <param name="alpha">Multiplies A^T A; finite.</param>
    /// <param name="beta">Multiplies the old C; finite; with 0 C is only written. Otherwise only the old C's lower triangle
    /// (i &gt;= j) is read and taken as symmetric, as BLAS <c>ssyrk</c> with uplo = 'L' does.</param>
    /// <param name="c">Float32 [d, d] on a's device, or null to allocate (beta must then be 0).</param>
    /// <returns><paramref name="c"/> when given, else a new tensor.</returns>
    /// <exception cref="ArgumentNullException">a is null.</exception>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    /// <exception cref="ArgumentException">a is not a float matrix, c does not match [d, d] Float32 on a's device, or beta is not 0 without c.</exception>
    /// <exception cref="ArgumentOutOfRangeException">alpha or beta is not finite.</exception>
    public static Tensor Syrk(Tensor a, float alpha = 1, float beta = 0, Tensor? c = null)
    {
        Matrix(a, nameof(a));
        Finite(alpha, nameof(alpha));
        Finite(beta, nameof(beta));
        long rows = a.Shape[0], d = a.Shape[1];
        Output(c, a, a, d, d, beta);
        Tensor result = c ?? Tensor.Allocate(DType.Float32, [d, d], a.Device);
        try
        {
            if (d > 0)
            {
                if (rows == 0) Scale(result, beta, lowerOnly: true);
                else a.Device.Backend.Syrk(a.Buffer, a.DType, (int)rows, (int)d, result.Buffer, alpha, beta);
            }
            return result;
        }
        catch when (c is null)
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>
    /// C = beta * C for an empty inner dimension (the product is an empty sum; beta 0 gives zeros without reading C, as in
    /// BLAS). For Syrk (<paramref name="lowerOnly"/>) only the lower triangle is read and mirrored, beta 1 included, as the
    /// kernels do when there are rows. A degenerate case, done on the host.
    /// </summary>
    private static void Scale(Tensor c, float beta, bool lowerOnly)
    {
        if (beta == 1 && !lowerOnly) return;
        float[] values = beta == 0 ? new float[c.ElementCount] : c.ToArray<float>();
        if (beta != 0)
            for (int i = 0; i < values.Length; i++) values[i] *= beta;
        if (lowerOnly)
        {
            int d = (int)c.Shape[0];
            for (int i = 0; i < d; i++)
                for (int j = 0; j < i; j++) values[(long)j * d + i] = values[(long)i * d + j];
        }
        c.CopyFrom<float>(values);
    }

    private static void Matrix(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);
        if (tensor.Rank != 2)
            throw new ArgumentException($"{name} has rank {tensor.Rank} ([{string.Join(", ", tensor.Shape)}]): must be a matrix (rank 2)", name);
        if (!Precision.IsFloatingPoint(tensor.DType))
            throw new ArgumentException($"{name} is {tensor.DType}: must be Float32, Float16 or BFloat16", name);
        if (tensor.Shape[0] > int.MaxValue || tensor.Shape[1] > int.MaxValue)
            throw new ArgumentException($"{name} is [{tensor.Shape[0]}, {tensor.Shape[1]}]: each dimension must be below 2^31", name);
    }

    private static void Finite(float value, string name)
    {
        if (!float.IsFinite(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} = {value}: must be finite");
    }

    private static void Output(Tensor? c, Tensor a, Tensor b, long m, long n, float beta)
    {
        if (c is null)
        {
            if (beta != 0)
                throw new ArgumentException($"beta = {beta} scales an existing C, but no c was given", nameof(c));
            return;
        }
        ObjectDisposedException.ThrowIf(c.IsDisposed, c);
        c.RequireWritable(nameof(c));
        if (c.DType != DType.Float32)
            throw new ArgumentException($"c is {c.DType}: the result is Float32", nameof(c));
        if (c.Device != a.Device)
            throw new ArgumentException($"c is on {c.Device} but a is on {a.Device}", nameof(c));
        if (c.Rank != 2 || c.Shape[0] != m || c.Shape[1] != n)
            throw new ArgumentException($"c has shape [{string.Join(", ", c.Shape)}] but the product is [{m}, {n}]", nameof(c));
        if (ReferenceEquals(c, a) || ReferenceEquals(c, b))
            throw new ArgumentException("c is one of the inputs: the product would read what it overwrites", nameof(c));
    }
}
