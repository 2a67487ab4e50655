using NativeTensor.Runtime;

namespace NativeTensor;

/// <summary>
/// Which keys a query may see. Query i of N sits at position <c>p = M - N + i</c> among the M keys (bottom-right
/// aligned, as FlashAttention and PyTorch's lower-right causal bias: with N &lt; M the queries are the last N positions,
/// a prefill after a cache or a decode step). Key j is visible iff <c>(!Causal || j &lt;= p) &amp;&amp;
/// (Window == 0 || j &gt; p - Window)</c>.
/// </summary>
/// <param name="Causal">Hide keys after the query's own position.</param>
/// <param name="Window">With W &gt; 0, hide keys at or before <c>p - W</c> (a sliding window of W keys ending at p when
/// causal); 0 for no window. Time and memory are then O(N W), not O(N M).</param>
public readonly record struct AttentionMask(bool Causal = false, int Window = 0);

/// <summary>
/// Scaled dot-product attention, forward and backward, in the FlashAttention-2 scheme: keys are visited in tiles with
/// an online softmax, so no [N, M] score matrix exists on any backend; the forward keeps the log-sum-exp of each query
/// and the backward recomputes the scores from it. Grouped heads: Hq query heads share Hkv key/value heads
/// (<c>Hq % Hkv == 0</c>; query head h reads key/value head <c>h / (Hq / Hkv)</c>), which covers multi-head (Hq = Hkv),
/// grouped-query and multi-query attention. Inputs are Float32, Float16 or BFloat16 (q, k, v one dtype); scores,
/// softmax and sums are Float32. One exception, on CUDA's tensor cores (sm_80 and newer, Float16 and BFloat16 inputs),
/// as in FlashAttention: the weights P, and in the backward dS, enter their products rounded to the input dtype
/// (<c>kernels/cuda/attention.cu</c> states the bound). <c>Reference/AttentionReference</c> is the math in double that
/// every backend approximates.
/// </summary>
public static class Attention
{
    /// <summary>The largest head dimension D the kernels take (any D from 1 up to it, not only powers of two).</summary>
    public const int MaxHeadDim = 256;

    /// <summary>
    /// <c>output[b, h, i, :] = Σ_j P[i, j] v[b, g, j, :]</c> with <c>P[i, j] = exp(s_ij - L_i)</c>,
    /// <c>s_ij = scale q[b, h, i, :] · k[b, g, j, :]</c>, <c>L_i = log Σ_j exp(s_ij)</c> (natural log), the sums over the
    /// keys query i sees (<see cref="AttentionMask"/>) and g = h / (Hq / Hkv). A query that sees no key gets output 0 and
    /// log-sum-exp -inf. Large scores do not overflow (the softmax subtracts the running maximum). A NaN or infinity
    /// in q, or in a visible key or value, makes that query's output NaN; hidden keys and values are never read.
    /// </summary>
    /// <param name="q">[B, Hq, N, D]: Float32, Float16 or BFloat16; 1 &lt;= D &lt;= <see cref="MaxHeadDim"/>.</param>
    /// <param name="k">[B, Hkv, M, D], q's dtype and device, Hkv &gt;= 1 dividing Hq.</param>
    /// <param name="v">As k.</param>
    /// <param name="mask">Causal and sliding-window visibility; default: every key visible.</param>
    /// <param name="scale">Multiplies q · k; finite and positive. Null is <c>1 / sqrt(D)</c>.</param>
    /// <param name="output">[B, Hq, N, D] of q's dtype on q's device, written in full; null allocates one.</param>
    /// <param name="logSumExp">Float32 [B, Hq, N] on q's device to receive L_i (what <see cref="Backward"/> takes), or null.</param>
    /// <returns><paramref name="output"/> when given, else a new tensor.</returns>
    /// <exception cref="ArgumentNullException">q, k or v is null.</exception>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The window is negative, or the scale is not finite and positive.</exception>
    /// <exception cref="ArgumentException">A rank is not 4; dtypes or devices differ; batch, head dimension or key count
    /// differ; Hq is not a multiple of Hkv; D is outside 1..<see cref="MaxHeadDim"/>; output or logSumExp has the wrong
    /// shape, dtype or device, is read-only, or is one of the inputs. Nothing is written when any rule fails.</exception>
    public static Tensor Forward(Tensor q, Tensor k, Tensor v, AttentionMask mask = default, float? scale = null,
        Tensor? output = null, Tensor? logSumExp = null)
    {
        AttentionShape shape = Shape(q, k, v, mask, scale);
        Output(output, q, nameof(output), q.DType, q.Shape, [q, k, v]);
        Output(logSumExp, q, nameof(logSumExp), DType.Float32, [q.Shape[0], q.Shape[1], q.Shape[2]], [q, k, v, output]);
        return Run(shape, q, k.Buffer, v.Buffer, output, logSumExp);
    }

    /// <summary>
    /// The gradients of <see cref="Forward"/>'s output with respect to q, k and v, given
    /// <paramref name="outputGradient"/> dO: with <c>Δ_i = dO_i · O_i</c>, <c>dP_ij = dO_i · v_j</c> and
    /// <c>dS_ij = P_ij (dP_ij - Δ_i)</c>, <c>dq_i = scale Σ_j dS_ij k_j</c>, <c>dk_j = scale Σ_i dS_ij q_i</c> and
    /// <c>dv_j = Σ_i P_ij dO_i</c>, with P recomputed from the forward's log-sum-exp, and dk, dv summed over the query
    /// heads of each group. Keys no query sees get zero gradients; so do queries that see no key. Bitwise deterministic
    /// run to run on each backend (no order-dependent atomics).
    /// </summary>
    /// <param name="outputGradient">dO, [B, Hq, N, D] of q's dtype.</param>
    /// <param name="q">As in <see cref="Forward"/>.</param>
    /// <param name="k">As in <see cref="Forward"/>.</param>
    /// <param name="v">As in <see cref="Forward"/>.</param>
    /// <param name="output">The forward's output O, [B, Hq, N, D] of q's dtype.</param>
    /// <param name="logSumExp">The forward's log-sum-exp, Float32 [B, Hq, N].</param>
    /// <param name="mask">The forward's mask.</param>
    /// <param name="scale">The forward's scale; null is <c>1 / sqrt(D)</c>.</param>
    /// <returns>dq [B, Hq, N, D], dk and dv [B, Hkv, M, D], in q's dtype on q's device.</returns>
    /// <exception cref="ArgumentNullException">A tensor is null.</exception>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="Forward"/>.</exception>
    /// <exception cref="ArgumentException">As <see cref="Forward"/>, and outputGradient, output or logSumExp does not
    /// match q's shape (logSumExp: [B, Hq, N] Float32), dtype and device.</exception>
    public static (Tensor Dq, Tensor Dk, Tensor Dv) Backward(Tensor outputGradient, Tensor q, Tensor k, Tensor v,
        Tensor output, Tensor logSumExp, AttentionMask mask = default, float? scale = null)
    {
        AttentionShape shape = Shape(q, k, v, mask, scale);
        Input(outputGradient, q, nameof(outputGradient), q.DType, q.Shape);
        Input(output, q, nameof(output), q.DType, q.Shape);
        Input(logSumExp, q, nameof(logSumExp), DType.Float32, [q.Shape[0], q.Shape[1], q.Shape[2]]);
        Tensor dq = Tensor.Allocate(q.DType, [.. q.Shape], q.Device);
        Tensor? dk = null, dv = null, delta = null;
        try
        {
            dk = Tensor.Allocate(k.DType, [.. k.Shape], k.Device);
            dv = Tensor.Allocate(v.DType, [.. v.Shape], v.Device);
            if (shape.QueryElements == 0 || shape.KeyElements == 0)
            {
                Zero(dq);
                Zero(dk);
                Zero(dv);
            }
            else
            {
                delta = Tensor.Allocate(DType.Float32, [shape.QueryRows], q.Device);
                q.Device.Backend.AttentionBackward(shape, outputGradient.Buffer, q.Buffer, k.Buffer, v.Buffer, output.Buffer,
                    logSumExp.Buffer, delta.Buffer, dq.Buffer, dk.Buffer, dv.Buffer);
            }
            return (dq, dk, dv);
        }
        catch
        {
            dq.Dispose();
            dk?.Dispose();
            dv?.Dispose();
            throw;
        }
        finally
        {
            delta?.Dispose();
        }
    }

    /// <summary>
    /// Forward over keys and values held in stores [Hkv, rows, D] (a KV cache's memory, read in place): key j is row
    /// <c>(first + j) mod rows</c> of each head, for j &lt; <paramref name="keys"/>. q is [1, Hq, N, D] of the stores'
    /// dtype; output and logSumExp follow <see cref="Forward"/>'s rules.
    /// </summary>
    internal static Tensor ForwardOverStore(Tensor q, Tensor keyStore, Tensor valueStore, int keys, int first, AttentionMask mask,
        float? scale, Tensor? output, Tensor? logSumExp)
    {
        Tensor4(q, nameof(q));
        if (q.Shape[0] != 1)
            throw new ArgumentException($"q has shape [{string.Join(", ", q.Shape)}]: attention over a cache takes one batch, [1, Hq, N, D]", nameof(q));
        int rows = (int)keyStore.Shape[1], kvHeads = (int)keyStore.Shape[0], d = (int)keyStore.Shape[2];
        if (q.DType != keyStore.DType)
            throw new ArgumentException($"q is {q.DType} but the cache holds {keyStore.DType}", nameof(q));
        if (q.Device != keyStore.Device)
            throw new ArgumentException($"q is on {q.Device} but the cache is on {keyStore.Device}", nameof(q));
        if (q.Shape[3] != d)
            throw new ArgumentException($"q has head dimension {q.Shape[3]} but the cache's is {d}", nameof(q));
        if (q.Shape[1] % kvHeads != 0)
            throw new ArgumentException($"q has {q.Shape[1]} heads: a multiple of the cache's {kvHeads} key/value heads is needed", nameof(q));
        var shape = new AttentionShape(q.DType, 1, (int)q.Shape[1], kvHeads, (int)q.Shape[2], keys, d, mask.Causal, Window(mask),
            Scale(scale, d), rows, first);
        Output(output, q, nameof(output), q.DType, q.Shape, [q, keyStore, valueStore]);
        Output(logSumExp, q, nameof(logSumExp), DType.Float32, [1, q.Shape[1], q.Shape[2]], [q, keyStore, valueStore, output]);
        return Run(shape, q, keyStore.Buffer, valueStore.Buffer, output, logSumExp);
    }

    private static Tensor Run(in AttentionShape shape, Tensor q, DeviceBuffer keys, DeviceBuffer values, Tensor? output, Tensor? logSumExp)
    {
        Tensor result = output ?? Tensor.Allocate(q.DType, [.. q.Shape], q.Device);
        try
        {
            if (shape.QueryElements == 0) return result;
            if (shape.Keys == 0)
            {
                // Every query sees no key: output 0, log-sum-exp -inf. A degenerate case, done on the host.
                Zero(result);
                logSumExp?.CopyFrom<float>(Enumerable.Repeat(float.NegativeInfinity, (int)shape.QueryRows).ToArray());
                return result;
            }
            q.Device.Backend.AttentionForward(shape, q.Buffer, keys, values, result.Buffer, logSumExp?.Buffer);
            return result;
        }
        catch when (output is null)
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>Checks q, k and v against each other and the mask and scale; returns the validated geometry.</summary>
    private static AttentionShape Shape(Tensor q, Tensor k, Tensor v, AttentionMask mask, float? scale)
    {
        Tensor4(q, nameof(q));
        Tensor4(k, nameof(k));
        Tensor4(v, nameof(v));
        foreach ((Tensor t, string name) in new[] { (k, nameof(k)), (v, nameof(v)) })
        {
            if (t.DType != q.DType)
                throw new ArgumentException($"{name} is {t.DType} but q is {q.DType}: q, k and v must share one dtype", name);
            if (t.Device != q.Device)
                throw new ArgumentException($"{name} is on {t.Device} but q is on {q.Device}", name);
            if (t.Shape[0] != q.Shape[0])
                throw new ArgumentException($"{name} has batch {t.Shape[0]} but q has {q.Shape[0]}", name);
            if (t.Shape[3] != q.Shape[3])
                throw new ArgumentException($"{name} has head dimension {t.Shape[3]} but q has {q.Shape[3]}", name);
        }
        if (v.Shape[1] != k.Shape[1] || v.Shape[2] != k.Shape[2])
            throw new ArgumentException(
                $"v has shape [{string.Join(", ", v.Shape)}] but k has [{string.Join(", ", k.Shape)}]: one value per key, head for head", nameof(v));
        long hq = q.Shape[1], hkv = k.Shape[1], d = q.Shape[3];
        if (hkv < 1)
            throw new ArgumentException($"k has {hkv} heads: at least one key/value head is needed", nameof(k));
        if (hq % hkv != 0)
            throw new ArgumentException($"q has {hq} heads and k has {hkv}: query heads must be a multiple of key/value heads (Hq % Hkv == 0)", nameof(k));
        if (d < 1 || d > MaxHeadDim)
            throw new ArgumentException($"q has head dimension {d}: D must be from 1 to {MaxHeadDim}", nameof(q));
        return new AttentionShape(q.DType, (int)q.Shape[0], (int)hq, (int)hkv, (int)q.Shape[2], (int)k.Shape[2], (int)d,
            mask.Causal, Window(mask), Scale(scale, (int)d));
    }

    private static int Window(AttentionMask mask) => mask.Window >= 0
        ? mask.Window
        : throw new ArgumentOutOfRangeException(nameof(mask), mask.Window, $"mask.Window = {mask.Window}: must be 0 (no window) or positive");

    private static float Scale(float? scale, int d)
    {
        float value = scale ?? (float)(1.0 / Math.Sqrt(d));
        if (!float.IsFinite(value) || value <= 0)
            throw new ArgumentOutOfRangeException(nameof(scale), value, $"scale = {value}: must be finite and positive");
        return value;
    }

    private static void Tensor4(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);
        if (tensor.Rank != 4)
            throw new ArgumentException($"{name} has rank {tensor.Rank} ([{string.Join(", ", tensor.Shape)}]): attention takes [batch, heads, length, headDim]", name);
        if (!Precision.IsFloatingPoint(tensor.DType))
            throw new ArgumentException($"{name} is {tensor.DType}: must be Float32, Float16 or BFloat16", name);
        for (int axis = 0; axis < 4; axis++)
            if (tensor.Shape[axis] > int.MaxValue)
                throw new ArgumentException($"{name} has shape [{string.Join(", ", tensor.Shape)}]: each extent must be below 2^31", name);
    }

    /// <summary>Checks a tensor the call reads beside q (the output gradient, the forward's output and log-sum-exp).</summary>
    private static void Input(Tensor tensor, Tensor q, string name, DType dtype, IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);
        Matches(tensor, q, name, dtype, shape);
    }

    /// <summary>Checks an optional output: writable, of the expected dtype, shape and device, and none of the inputs.</summary>
    private static void Output(Tensor? tensor, Tensor q, string name, DType dtype, IReadOnlyList<long> shape, Tensor?[] others)
    {
        if (tensor is null) return;
        ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);
        tensor.RequireWritable(name);
        Matches(tensor, q, name, dtype, shape);
        if (others.Any(o => ReferenceEquals(o, tensor)))
            throw new ArgumentException($"{name} is also an input or another output: attention would read what it overwrites", name);
    }

    private static void Matches(Tensor tensor, Tensor q, string name, DType dtype, IReadOnlyList<long> shape)
    {
        if (tensor.DType != dtype)
            throw new ArgumentException($"{name} is {tensor.DType}: must be {dtype}", name);
        if (tensor.Device != q.Device)
            throw new ArgumentException($"{name} is on {tensor.Device} but q is on {q.Device}", name);
        if (!tensor.Shape.SequenceEqual(shape))
            throw new ArgumentException($"{name} has shape [{string.Join(", ", tensor.Shape)}]: must be [{string.Join(", ", shape)}]", name);
    }

    /// <summary>Zeros a tensor from the host (degenerate shapes only).</summary>
    private static void Zero(Tensor tensor)
    {
        if (tensor.ElementCount > 0) tensor.Device.Backend.Write(tensor.Buffer, 0, new byte[tensor.ByteCount]);
    }
}
