using NativeTensor.Cases;

namespace NativeTensor.Perf;

/// <summary>
/// One timed shape of <see cref="Windows.Gather(Tensor, ReadOnlySpan{long}, int, Tensor?)"/>: frames, window and batch.
/// Its shared <see cref="WindowCase"/> (one batch of these starts, first and last window included) is what perf
/// validates on each device before timing it, and what says the bytes a gather must move.
/// </summary>
internal sealed record GatherCase(string Label, DType DType, long[] FrameShape, int Window, int Batch)
{
    private readonly WindowCase _shared = WindowCase.Drawn(DType, FrameShape, Window, Batch, seed: Window * 31 + Batch, WindowOp.GatherHostStarts);

    /// <summary>This shape as the shared case of <paramref name="op"/>.</summary>
    public WindowCase Shared(WindowOp op) => _shared with { Op = op };

    /// <summary>The sequence-embedding batch of the memory scenario: 256 windows of 30 frames of 287 float32.</summary>
    public static GatherCase Embedding { get; } = new("embedding", DType.Float32, [380_000, 287], 30, 256);

    /// <summary>The same frames with a 4x larger batch.</summary>
    public static GatherCase LargeBatch { get; } = new("large batch", DType.Float32, [380_000, 287], 30, 1024);

    /// <summary>Small rows: a 2^25-token Int32 stream (134 MB, well past the caches), windows of 512 tokens.</summary>
    public static GatherCase Tokens { get; } = new("tokens", DType.Int32, [1L << 25], 512, 256);

    public static GatherCase[] All { get; } = [Embedding, LargeBatch, Tokens];

    public long FrameCount => FrameShape[0];

    /// <summary>Elements of one frame: everything after axis 0.</summary>
    public long RowElements => FrameShape.Skip(1).Aggregate(1L, (a, b) => a * b);

    public long RowBytes => RowElements * DType.SizeOf();

    /// <summary>Bytes of one output batch, B * W * row.</summary>
    public long BatchBytes => Batch * Window * RowBytes;

    /// <summary>Bytes a gather must move, as the shared case counts them: every output byte is read once and written once.</summary>
    public long MovedBytes => _shared.MovedBytes;

    public long[] OutputShape => [Batch, Window, .. FrameShape.Skip(1)];

    /// <summary>The number of valid starts: <see cref="Windows.Count"/> at stride 1.</summary>
    public long WindowCount => Windows.Count(FrameCount, Window);

    /// <summary>e.g. <c>[256, 30, 287] of [380000, 287]</c>.</summary>
    public string ShapeText => $"{Dims(OutputShape)} of {Dims(FrameShape)}";

    public string DTypeText => DType.ToString().ToLowerInvariant();

    /// <summary>Frames on <paramref name="device"/> filled with a cheap pattern (the values do not matter to a copy; the pages must be touched).</summary>
    public Tensor CreateFrames(Device device)
    {
        Tensor host = Tensor.Empty(DType, FrameShape, Device.Cpu);
        if (DType == DType.Float32)
        {
            Span<float> values = host.AsSpan<float>();
            for (int i = 0; i < values.Length; i++) values[i] = i * 0.001f;
        }
        else if (DType == DType.Int32)
        {
            Span<int> tokens = host.AsSpan<int>();
            for (int i = 0; i < tokens.Length; i++) tokens[i] = i % 50_257;
        }
        else throw new NotSupportedException($"perf cases use float32 or int32 frames, not {DType}");
        if (device.Kind == DeviceKind.Cpu) return host;
        using (host) return host.To(device);
    }

    private static string Dims(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";
}

/// <summary>
/// The start sets of one case: one lane per timed op, so ops timed rep by rep never gather one another's
/// (cache-warm) windows. The peers are handed the host-starts gather's lane, so they gather exactly its batches.
/// </summary>
internal sealed record CaseStarts(GatherCase Case, StartSets Copy, StartSets SpanCopy, StartSets HostGather, StartSets DeviceGather)
{
    public static CaseStarts Draw(GatherCase c, int sets, int seed) => new(c,
        StartSets.Draw(c, sets, seed), StartSets.Draw(c, sets, seed + 10), StartSets.Draw(c, sets, seed + 20), StartSets.Draw(c, sets, seed + 30));
}

/// <summary>
/// The random starts an op is timed with: one set of <c>Batch</c> starts per warm-up slot and per timed rep, all
/// drawn without repeats from one seeded shuffle of every valid start (as an epoch would), so caches never see
/// the same windows twice. The same sets go to the peers, so NumPy and PyTorch gather exactly these batches.
/// </summary>
internal sealed record StartSets(long[][] Sets, long[] CopyStarts)
{
    public static StartSets Draw(GatherCase c, int sets, int seed)
    {
        long[] shuffled = ShuffledPrefix(c.WindowCount, checked(sets * c.Batch), seed);
        var result = new long[sets][];
        for (int s = 0; s < sets; s++) result[s] = shuffled.AsSpan(s * c.Batch, c.Batch).ToArray();

        // The copy ceiling moves the same bytes as one batch, from a random place in the frames each rep.
        var rng = new Random(seed + 1);
        long lastCopyStart = c.FrameCount - (long)c.Batch * c.Window;
        long[] copyStarts = Enumerable.Range(0, sets).Select(_ => rng.NextInt64(0, lastCopyStart + 1)).ToArray();
        return new StartSets(result, copyStarts);
    }

    /// <summary>All sets back to back as little-endian Int64, warm-up sets first: the file the peer scripts read.</summary>
    public void WriteTo(string path)
    {
        using var file = new BinaryWriter(File.Create(path));
        foreach (long[] set in Sets)
            foreach (long start in set) file.Write(start);
    }

    /// <summary>
    /// The first <paramref name="take"/> entries of a uniform shuffle of 0 .. count-1 (Fisher–Yates; the swaps are
    /// kept in a dictionary, so a 33-million-token stream costs only the positions touched).
    /// </summary>
    private static long[] ShuffledPrefix(long count, int take, int seed)
    {
        if (take > count) throw new ArgumentOutOfRangeException(nameof(take), take, $"only {count} windows to draw from");
        var rng = new Random(seed);
        var moved = new Dictionary<long, long>();
        var result = new long[take];
        for (int i = 0; i < take; i++)
        {
            long j = rng.NextInt64(i, count);
            result[i] = moved.GetValueOrDefault(j, j);
            moved[j] = moved.GetValueOrDefault(i, i);
        }
        return result;
    }
}
