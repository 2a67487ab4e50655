namespace NativeTensor.Training;

/// <summary>
/// The order in which an epoch visits the windows of a frames tensor: a permutation of every window start
/// (<c>s * stride</c>), stable for a given seed and epoch, and sharded across <c>worldSize</c> ranks the
/// way PyTorch's DistributedSampler does (rank r takes positions r, r + worldSize, ... of the shuffled order, so
/// shards are disjoint and together cover every window; the last positions repeat the first ones when the count
/// does not divide evenly, so every rank takes the same number of steps).
/// </summary>
public sealed class WindowSampler
{
    private readonly long _count;

    /// <summary>A sampler over the windows of <paramref name="frames"/> frames.</summary>
    /// <exception cref="ArgumentOutOfRangeException">frames &lt; window, window/stride &lt; 1, or rank outside [0, worldSize).</exception>
    public WindowSampler(long frames, int window, int stride = 1, ulong seed = 0, int rank = 0, int worldSize = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if (rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank = {rank}: must be in [0, {worldSize})");
        _count = NativeTensor.Windows.Count(frames, window, stride);
        if (_count == 0)
            throw new ArgumentOutOfRangeException(nameof(frames), frames, $"frames = {frames} holds no window of {window}");
        Stride = stride;
        Seed = seed;
        Rank = rank;
        WorldSize = worldSize;
    }

    /// <summary>The distance between consecutive window starts.</summary>
    public int Stride { get; }

    /// <summary>The shuffle seed; the same seed and epoch give the same order on every machine.</summary>
    public ulong Seed { get; }

    /// <summary>This shard's index.</summary>
    public int Rank { get; }

    /// <summary>The number of shards.</summary>
    public int WorldSize { get; }

    /// <summary>Windows this rank visits per epoch: ceil(total / worldSize).</summary>
    public long WindowsPerRank => (_count + WorldSize - 1) / WorldSize;

    /// <summary>The window starts this rank visits in <paramref name="epoch"/>, in order.</summary>
    public long[] Epoch(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        long[] order = Permutation(_count, MixSeed(Seed, (ulong)epoch));
        var mine = new long[WindowsPerRank];
        for (long i = 0; i < mine.LongLength; i++)
            mine[i] = order[(i * WorldSize + Rank) % _count] * Stride;
        return mine;
    }

    /// <summary>The epoch's starts cut into batches of <paramref name="batch"/>; the last may be shorter unless <paramref name="dropLast"/>.</summary>
    public IEnumerable<ReadOnlyMemory<long>> Batches(int epoch, int batch, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        long[] starts = Epoch(epoch);
        for (int at = 0; at < starts.Length; at += batch)
        {
            int length = Math.Min(batch, starts.Length - at);
            if (length < batch && dropLast) yield break;
            yield return starts.AsMemory(at, length);
        }
    }

    /// <summary>Fisher-Yates over [0, n) driven by SplitMix64, which is fully specified, unlike <see cref="Random"/>'s algorithm.</summary>
    private static long[] Permutation(long n, ulong state)
    {
        var order = new long[n];
        for (long i = 0; i < n; i++) order[i] = i;
        for (long i = n - 1; i > 0; i--)
        {
            // Multiply-shift maps 64 random bits onto [0, i]; its bias, at most (i + 1) / 2^64, is far below any test's reach.
            long j = (long)Math.BigMul(SplitMix64(ref state), (ulong)(i + 1), out _);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    private static ulong MixSeed(ulong seed, ulong epoch)
    {
        ulong state = seed ^ (epoch * 0x9E3779B97F4A7C15UL);
        return SplitMix64(ref state);
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
