using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using NativeTensor.Runtime;

namespace NativeTensor.Cpu;

/// <summary>
/// CPU attention in the FlashAttention-2 scheme (Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
/// Partitioning", 2023), blocked so a tile's working set stays in L1/L2 and no [N, M] matrix exists:
/// <code>
/// forward, per (batch, head, tile of QueryBlock queries), the tiles shared out over the cores:
///   Q = q tile widened, times scale log2(e)          (scores in the log2 domain: the softmax is exp2)
///   for each tile of KeyBlock keys that some query of the tile sees:
///     S = Q K^T; hidden keys -inf; per row: m' = max(m, max S), P = 2^(S - m'), l = l 2^(m - m') + Σ P, O *= 2^(m - m')
///     O += P V
///   O /= l; L = (m + log2 l) ln 2                     (a query that sees no key: O = 0, L = -inf)
/// backward, per (batch, key/value head), the pairs shared out over the cores:
///   Δ = rowsum(dO ∘ O) first, for every query
///   for each key tile: for each query head of the group, each query tile that sees the key tile:
///     P = 2^(S - L log2 e); dP = dO V^T; dS = P (dP - Δ)
///     dV += P^T dO;  dK += dS^T Q;  dQ += dS K       (dQ added into a Float32 accumulator per query row)
/// </code>
/// Every product is the one micro-kernel of <see cref="AttentionTiles{TLanes, TVector}"/>. A (batch, kv head) owns its dK and
/// dV and every dQ row of its query heads, so no two cores add into one element: the backward's sums run in a fixed
/// order and its bits do not depend on scheduling. When there are fewer (batch, kv head) pairs than cores, each pair's
/// key tiles are split into a fixed number of chunks with their own dQ accumulators, added in chunk order at the end.
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>Queries per tile: a tile of Q, O (or dO) and the scores of one key tile stay in L1/L2 for D up to 128.</summary>
    public const int QueryBlock = 64;

    /// <summary>Keys per tile (a multiple of every lane count).</summary>
    public const int KeyBlock = 64;

    /// <summary>Below this many multiply-adds a call runs on one core: handing work to a second costs tens of microseconds.</summary>
    private const long ParallelThreshold = 1L << 20;

    /// <summary>
    /// Query rows per key/value head (group size times N) at or below which the forward streams the keys past all of them
    /// (<see cref="AttentionDecode{TLanes, TVector}"/>) instead of tiling the queries: decode steps and short blocks.
    /// </summary>
    public const int DecodeRows = 16;

    public static void Forward(in AttentionShape shape, byte* q, byte* k, byte* v, byte* output, float* logSumExp, SimdWidth width)
    {
        switch (width)
        {
            case SimdWidth.V512 when Vector512.IsHardwareAccelerated: Forward<Floats512, Vector512<float>>(shape, q, k, v, output, logSumExp, width); break;
            case >= SimdWidth.V256 when Vector256.IsHardwareAccelerated: Forward<Floats256, Vector256<float>>(shape, q, k, v, output, logSumExp, width); break;
            case >= SimdWidth.V128 when Vector128.IsHardwareAccelerated: Forward<Floats128, Vector128<float>>(shape, q, k, v, output, logSumExp, width); break;
            default: Forward<Floats1, float>(shape, q, k, v, output, logSumExp, width); break;
        }
    }

    private static void Forward<TLanes, TVector>(in AttentionShape shape, byte* q, byte* k, byte* v, byte* output, float* logSumExp, SimdWidth width)
        where TLanes : IFloatLanes<TVector> where TVector : struct
    {
        if ((long)shape.Group * shape.Queries <= DecodeRows) AttentionDecode<TLanes, TVector>.Forward(shape, q, k, v, output, logSumExp, width);
        else AttentionDriver<TLanes, TVector>.Forward(shape, q, k, v, output, logSumExp, width);
    }

    public static void Backward(in AttentionShape shape, byte* outputGradient, byte* q, byte* k, byte* v, byte* output, float* logSumExp,
        float* delta, byte* dq, byte* dk, byte* dv, SimdWidth width)
    {
        switch (width)
        {
            case SimdWidth.V512 when Vector512.IsHardwareAccelerated:
                AttentionDriver<Floats512, Vector512<float>>.Backward(shape, outputGradient, q, k, v, output, logSumExp, delta, dq, dk, dv, width); break;
            case >= SimdWidth.V256 when Vector256.IsHardwareAccelerated:
                AttentionDriver<Floats256, Vector256<float>>.Backward(shape, outputGradient, q, k, v, output, logSumExp, delta, dq, dk, dv, width); break;
            case >= SimdWidth.V128 when Vector128.IsHardwareAccelerated:
                AttentionDriver<Floats128, Vector128<float>>.Backward(shape, outputGradient, q, k, v, output, logSumExp, delta, dq, dk, dv, width); break;
            default:
                AttentionDriver<Floats1, float>.Backward(shape, outputGradient, q, k, v, output, logSumExp, delta, dq, dk, dv, width); break;
        }
    }

    /// <summary>Runs <paramref name="body"/> for every item in [0, items), on one core when the work is small.</summary>
    internal static void Share<TScratch>(long items, long multiplyAdds, Func<TScratch> scratch, Action<long, TScratch> body) where TScratch : IDisposable
    {
        if (items <= 1 || multiplyAdds < ParallelThreshold || Environment.ProcessorCount == 1)
        {
            using TScratch local = scratch();
            for (long i = 0; i < items; i++) body(i, local);
            return;
        }
        Parallel.For(0L, items, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, scratch,
            (i, _, local) =>
            {
                body(i, local);
                return local;
            },
            local => local.Dispose());
    }
}

/// <summary>Float32 scratch for one core's tiles, 64-byte aligned, carved into regions a tile takes and gives back.</summary>
internal sealed unsafe class AttentionScratch : IDisposable
{
    /// <summary>Regions are rounded up to a cache line, so a scratch holds this much slack per region for up to 16 regions.</summary>
    private const long Slack = 16 * 16;

    private float* _base;
    private readonly long _capacity;
    private long _used;

    public AttentionScratch(long floats)
    {
        _capacity = floats + Slack;
        _base = (float*)NativeMemory.AlignedAlloc((nuint)(_capacity * 4), 64);
    }

    /// <summary>The next <paramref name="floats"/> floats, starting on a cache line.</summary>
    public float* Take(long floats)
    {
        if (_used + floats > _capacity) throw new InvalidOperationException($"attention scratch of {_capacity} floats asked for {_used + floats}");
        float* region = _base + _used;
        _used += (floats + 15) & ~15L;
        return region;
    }

    /// <summary>Gives every region back.</summary>
    public void Reset() => _used = 0;

    public void Dispose()
    {
        if (_base == null) return;
        NativeMemory.AlignedFree(_base);
        _base = null;
    }
}
