namespace NativeTensor.Memory;

/// <summary>Attention over the keys and values the cache holds, read in place.</summary>
public sealed partial class KvCache
{
    /// <summary>
    /// <see cref="Attention.Forward"/> of a block of queries over every position the cache holds, [<see cref="WindowStart"/>,
    /// <see cref="Length"/>), read in place from the cache's memory (or its mapped file) with no copy of it: equal to
    /// <c>Attention.Forward(query, keys, values, ...)</c> over the keys and values <see cref="Read(long, int)"/> returns for
    /// that range, as [1, Heads, held, HeadDim]. The queries are the last N positions (bottom-right alignment): after
    /// appending a token's keys and values, its query block [1, Hq, 1, D] decodes it; after appending a prompt of N
    /// positions, [1, Hq, N, D] with a causal mask is its prefill.
    /// </summary>
    /// <param name="query">[1, Hq, N, <see cref="HeadDim"/>] on the cache's device, Hq a multiple of <see cref="Heads"/>
    /// (query head h reads cache head h / (Hq / Heads)); any floating-point dtype: one other than the cache's is converted
    /// to the cache's first (a copy of the query block only), and the output comes back in the query's dtype.</param>
    /// <param name="mask">Causal and sliding-window visibility, over held positions (a ring's window is the cache's own).</param>
    /// <param name="scale">Multiplies q · k; null is 1 / sqrt(HeadDim).</param>
    /// <param name="output">[1, Hq, N, HeadDim] of the query's dtype on the cache's device, or null to allocate one.</param>
    /// <param name="logSumExp">Float32 [1, Hq, N] to receive the log-sum-exp, or null.</param>
    /// <returns><paramref name="output"/> when given, else a new tensor.</returns>
    /// <exception cref="ObjectDisposedException">The cache or a tensor was disposed.</exception>
    /// <exception cref="ArgumentNullException">query is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="Attention.Forward"/> (window, scale).</exception>
    /// <exception cref="ArgumentException">As <see cref="Attention.Forward"/>, with the cache standing for k and v: the query's
    /// rank, batch (must be 1), head dimension, head count or device does not fit, or output or logSumExp does not.</exception>
    public Tensor Attend(Tensor query, AttentionMask mask = default, float? scale = null, Tensor? output = null, Tensor? logSumExp = null)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(query);
        ObjectDisposedException.ThrowIf(query.IsDisposed, query);
        long held = _length - FirstHeld;
        int first = (int)(FirstHeld % Capacity);
        if (query.DType == DType || !Precision.IsFloatingPoint(query.DType))
            return Attention.ForwardOverStore(query, _keys, _values, (int)held, first, mask, scale, output, logSumExp);
        // A query of another dtype: convert the query block (not the cache), attend, and convert the result back.
        if (output is not null && output.DType != query.DType)
            throw new ArgumentException($"output is {output.DType}: must be the query's {query.DType}", nameof(output));
        using Tensor converted = Precision.Convert(query, DType);
        using Tensor result = Attention.ForwardOverStore(converted, _keys, _values, (int)held, first, mask, scale, null, logSumExp);
        return Precision.Convert(result, query.DType, output);
    }
}
