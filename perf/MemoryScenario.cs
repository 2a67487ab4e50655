using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NativeTensor.Memory;

namespace NativeTensor.Perf;

/// <summary>What the memory scenario measured, for the targets summary.</summary>
/// <param name="LazyOverEager">Lazy over eager batches/s on the scaled-down run (0 when their batches differed).</param>
/// <param name="FullLazyOverEager">The full-size lazy epoch's batches/s over the scaled-down eager iteration's.</param>
/// <param name="Lazy">The Float32 lazy epoch's child.</param>
/// <param name="Bf16">The BFloat16-frames lazy epoch's child.</param>
/// <param name="ScaledEagerRssBytes">How much RSS grew while Windows.Eager built the scaled-down windows.</param>
internal sealed record MemoryResult(long LazyPeakBytes, long BudgetBytes, double LazyOverEager, double FullLazyOverEager, double EagerBytes,
    long Bf16PeakBytes, long Bf16BudgetBytes, double Bf16OverFloat32, MemoryScenario.LazyEpoch Lazy, MemoryScenario.LazyEpoch Bf16, long ScaledEagerRssBytes);

/// <summary>
/// The sequence-embedding case: 380,000 frames x 287 float32, window 30, stride 1, batch 256, one shuffled epoch.
/// Eager windows would cost Count * 30 * 287 * 4 bytes; the lazy epoch (Windows.Gather per batch) runs in a child
/// process so its peak RSS is its own, and eager vs lazy iteration speed is compared on a scaled-down copy where
/// the eager windows really fit in memory.
/// </summary>
internal static class MemoryScenario
{
    internal const long Frames = 380_000;
    internal const long ScaledFrames = 20_000;
    internal const int Row = 287, Window = 30, Batch = 256;
    private const int Seed = 7;
    private const long BudgetSlackBytes = 150_000_000;

    /// <summary>Gathers run this long before any clock starts: on two cores tier-1 code takes about a second to arrive.</summary>
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(1);

    private static long FrameBytes(long frames) => frames * Row * sizeof(float);

    private static long BatchBytes => (long)Batch * Window * Row * sizeof(float);

    public static MemoryResult Run(Report report, bool quick)
    {
        long windows = Windows.Count(Frames, Window);
        double eagerBytes = (double)windows * Window * Row * sizeof(float);
        long budget = FrameBytes(Frames) + 4 * BatchBytes + BudgetSlackBytes;
        report.Line($"case      : {Frames:N0} frames x {Row} float32 ({MB(FrameBytes(Frames))}), window {Window}, stride 1, batch {Batch}, one shuffled epoch (seed {Seed})");
        report.Line($"windows   : {windows:N0} = {Batches(windows):N0} batches (the last one {LastBatch(windows)} windows)");
        report.Line($"eager     : {windows:N0} x {Window} x {Row} x 4 bytes = {eagerBytes / 1e9:F2} GB (computed; not built at this size)");

        LazyEpoch lazy = LazyEpoch.InChildProcess(Frames);
        report.Line($"lazy      : child process `perf memory-child`, Windows.Gather per batch into one reused output");
        report.Line($"  peak RSS (VmHWM)        {MB(lazy.PeakBytes)} ({MB(lazy.PeakBeforeEpochBytes)} before the epoch began)");
        report.Line($"  budget                  frames {MB(FrameBytes(Frames))} + 4 batches {MB(4 * BatchBytes)} + {MB(BudgetSlackBytes)} = {MB(budget)}: {(lazy.PeakBytes <= budget ? "under" : "OVER")} by {MB(Math.Abs(budget - lazy.PeakBytes))}");
        report.Line($"  eager bytes / lazy peak {eagerBytes / lazy.PeakBytes:F1}x less memory");
        report.Line($"  full epoch              {lazy.Batches:N0} batches in {lazy.Seconds:F2} s = {lazy.Batches / lazy.Seconds:N0} batches/s ({lazy.Windows * (double)Window * Row * 4 * 2 / lazy.Seconds / 1e9:F1} GB/s)");

        // The same epoch with the frames kept as BFloat16 (half the bytes), gathered straight into Float32 batches.
        LazyEpoch bf16 = LazyEpoch.InChildProcess(Frames, bfloat16: true);
        long bf16Budget = FrameBytes(Frames) / 2 + 4 * BatchBytes + BudgetSlackBytes;
        double bf16OverFloat32 = bf16.Batches / bf16.Seconds / (lazy.Batches / lazy.Seconds);
        report.Line($"lazy bf16 : child process `perf memory-child --bfloat16`, frames stored as BFloat16, Windows.Gather(..., outputType: Float32)");
        report.Line($"  peak RSS (VmHWM)        {MB(bf16.PeakBytes)} ({MB(bf16.PeakBeforeEpochBytes)} before the epoch began)");
        report.Line($"  budget                  frames {MB(FrameBytes(Frames) / 2)} + 4 float32 batches {MB(4 * BatchBytes)} + {MB(BudgetSlackBytes)} = {MB(bf16Budget)}: {(bf16.PeakBytes <= bf16Budget ? "under" : "OVER")} by {MB(Math.Abs(bf16Budget - bf16.PeakBytes))}");
        report.Line($"  full epoch              {bf16.Batches:N0} batches in {bf16.Seconds:F2} s = {bf16.Batches / bf16.Seconds:N0} batches/s, {bf16OverFloat32:F2} of the float32 epoch's");

        (double lazyOverEager, double eagerRate, long eagerRss) = CompareScaled(report, quick ? 2 : 7);
        double fullOverEager = lazy.Batches / lazy.Seconds / eagerRate;
        report.Line($"  full lazy epoch / eager {fullOverEager:F2} (the lazy full epoch's batches/s over the eager iteration's: both read out of cache)");
        return new MemoryResult(lazy.PeakBytes, budget, lazyOverEager, fullOverEager, eagerBytes, bf16.PeakBytes, bf16Budget, bf16OverFloat32, lazy, bf16, eagerRss);
    }

    /// <summary>
    /// At <see cref="ScaledFrames"/> frames, Windows.Eager really materialises every window; then one epoch iterates
    /// those pre-built windows and one gathers lazily from the frames, in the same shuffled order, each copying
    /// every batch into a batch buffer of the same bytes. Epochs alternate (and alternate which goes first); the
    /// medians are compared.
    /// </summary>
    /// <returns>Lazy over eager batches/s (0 when their first batches differ), eager batches/s, and the RSS growth of building the eager windows.</returns>
    private static (double LazyOverEager, double EagerRate, long EagerRssBytes) CompareScaled(Report report, int rounds)
    {
        using Tensor frames = FilledFrames(ScaledFrames);
        long rssBefore = ProcStatus.Bytes("VmRSS");
        var clock = Stopwatch.StartNew();
        using Tensor eager = Windows.Eager(frames, Window);
        double eagerBuildMs = clock.Elapsed.TotalMilliseconds;
        long rssGrowth = ProcStatus.Bytes("VmRSS") - rssBefore;
        long windows = Windows.Count(ScaledFrames, Window);
        long formula = windows * Window * Row * sizeof(float);
        report.Line($"scaled    : {ScaledFrames:N0} frames ({MB(FrameBytes(ScaledFrames))}), {windows:N0} windows, {Batches(windows)} batches, median of {rounds} epochs each");
        report.Line($"  Windows.Eager           {MB(eager.ByteCount)} materialised in {eagerBuildMs:F0} ms (RSS +{MB(rssGrowth)}; Count x 30 x 287 x 4 = {MB(formula)}: {(eager.ByteCount == formula ? "equal" : "DIFFERENT")})");

        long[] order = Shuffled(windows, Seed);
        // Eager iteration: window s of the eager tensor [S, 30, 287] is its row s, so a batch is Windows.Gather of
        // those rows with window 1, output [256, 1, 30, 287]: the same bytes, the same copy kernel, as lazy's [256, 30, 287].
        using var eagerEpoch = new Epoch(eager, 1, order, DType.Float32);
        using var lazyEpoch = new Epoch(frames, Window, order, DType.Float32);
        eagerEpoch.Step(0);
        lazyEpoch.Step(0);
        bool same = eagerEpoch.FirstBatchBytes().SequenceEqual(lazyEpoch.FirstBatchBytes());

        for (long began = Stopwatch.GetTimestamp(); Stopwatch.GetElapsedTime(began) < WarmUp;)
        {
            eagerEpoch.Run();
            lazyEpoch.Run();
        }
        var eagerSeconds = new double[rounds];
        var lazySeconds = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            if (r % 2 == 0) { eagerSeconds[r] = eagerEpoch.Run(); lazySeconds[r] = lazyEpoch.Run(); }
            else { lazySeconds[r] = lazyEpoch.Run(); eagerSeconds[r] = eagerEpoch.Run(); }
        }
        double eagerRate = Batches(windows) / Timing.Median(eagerSeconds);
        double lazyRate = Batches(windows) / Timing.Median(lazySeconds);
        report.Line($"  iterate eager windows   {eagerRate:N0} batches/s (Windows.Gather of pre-built windows, window 1)");
        report.Line($"  lazy gather             {lazyRate:N0} batches/s (Windows.Gather from frames, window 30)");
        report.Line($"  lazy / eager            {lazyRate / eagerRate:F2} (first batch byte-identical: {(same ? "yes" : "NO")})");
        report.Line($"  note: lazy reads {MB(FrameBytes(ScaledFrames))} of frames (cache-sized), eager {MB(eager.ByteCount)} of pre-built windows");
        return (same ? lazyRate / eagerRate : 0, eagerRate, rssGrowth);
    }

    /// <summary>The child: one full shuffled lazy epoch, then a JSON line with its own peak RSS.</summary>
    public static int Child(IReadOnlyList<string> args)
    {
        int at = args.ToList().IndexOf("--frames");
        long frames = at >= 0 && at + 1 < args.Count ? long.Parse(args[at + 1], CultureInfo.InvariantCulture) : Frames;
        bool bfloat16 = args.Contains("--bfloat16");
        long rssBeforeFrames = ProcStatus.Bytes("VmRSS");
        int mappedAt = args.ToList().IndexOf("--mapped");
        // --mapped FILE: the frames are a .npy file read through a memory map (MappedFiles' lazy epoch), not filled in RAM.
        using MappedTensor? mapped = mappedAt >= 0 && mappedAt + 1 < args.Count ? MappedTensor.OpenNpy(args[mappedAt + 1]) : null;
        using Tensor? filled = mapped is not null ? null : bfloat16 ? FilledBFloat16Frames(frames) : FilledFrames(frames);
        Tensor source = mapped?.Tensor ?? filled!;
        frames = source.Shape[0];
        long windows = Windows.Count(frames, Window);
        long[] order = Shuffled(windows, Seed);
        using var epoch = new Epoch(source, Window, order, DType.Float32);
        for (long i = 0, began = Stopwatch.GetTimestamp(); Stopwatch.GetElapsedTime(began) < WarmUp; i++)
            epoch.Step(i % epoch.Batches);
        long peakBefore = ProcStatus.Bytes("VmHWM");
        double seconds = epoch.Run();

        using var stdout = Console.OpenStandardOutput();
        using var json = new Utf8JsonWriter(stdout);
        json.WriteStartObject();
        json.WriteNumber("frames", frames);
        json.WriteNumber("windows", windows);
        json.WriteNumber("batches", epoch.Batches);
        json.WriteNumber("seconds", seconds);
        json.WriteNumber("vmhwm_bytes", ProcStatus.Bytes("VmHWM"));
        json.WriteNumber("vmhwm_before_epoch_bytes", peakBefore);
        json.WriteNumber("rss_before_frames_bytes", rssBeforeFrames);
        json.WriteNumber("rss_anon_bytes", ProcStatus.Bytes("RssAnon"));
        json.WriteNumber("rss_file_bytes", ProcStatus.Bytes("RssFile"));
        json.WriteEndObject();
        json.Flush();
        return 0;
    }

    private static Tensor FilledFrames(long frames)
    {
        Tensor tensor = Tensor.Empty(DType.Float32, [frames, Row], Device.Cpu);
        Span<float> values = tensor.AsSpan<float>();
        for (int i = 0; i < values.Length; i++) values[i] = i * 0.001f;
        return tensor;
    }

    /// <summary>BFloat16 frames filled in place: going through a Float32 tensor would put its bytes into the peak being measured.</summary>
    private static Tensor FilledBFloat16Frames(long frames)
    {
        Tensor tensor = Tensor.Empty(DType.BFloat16, [frames, Row], Device.Cpu);
        Span<BFloat16> values = tensor.AsSpan<BFloat16>();
        for (int i = 0; i < values.Length; i++) values[i] = BFloat16.FromSingle(i * 0.001f);
        return tensor;
    }

    private static long[] Shuffled(long count, int seed)
    {
        long[] order = new long[count];
        for (long i = 0; i < count; i++) order[i] = i;
        new Random(seed).Shuffle(order);
        return order;
    }

    private static long Batches(long windows) => (windows + Batch - 1) / Batch;

    private static long LastBatch(long windows) => windows - (Batches(windows) - 1) * Batch;

    private static string MB(double bytes) => $"{bytes / 1e6:N1} MB";

    /// <summary>What the child reported.</summary>
    /// <param name="BaselineBytes">The child's RSS before it made or mapped the frames: the runtime's own memory, which no estimate counts.</param>
    internal sealed record LazyEpoch(long Windows, long Batches, double Seconds, long PeakBytes, long PeakBeforeEpochBytes, long RssAnonBytes, long RssFileBytes,
        long BaselineBytes)
    {
        /// <summary>The child's epoch over <paramref name="frames"/> frames filled in RAM, or over the .npy at <paramref name="mappedPath"/> read through a memory map.</summary>
        public static LazyEpoch InChildProcess(long frames, bool bfloat16 = false, string? mappedPath = null)
        {
            (string file, string[] prefix) = SelfCommand();
            string[] storage = [.. bfloat16 ? ["--bfloat16"] : Array.Empty<string>(), .. mappedPath is null ? Array.Empty<string>() : ["--mapped", mappedPath]];
            (int exit, string output, string error) = Peers.RunProcess(file, [.. prefix, "memory-child", "--frames", $"{frames}", .. storage], TimeSpan.FromMinutes(5));
            if (exit != 0) throw new InvalidOperationException($"perf memory-child exited {exit}: {error}");
            try
            {
                using JsonDocument document = JsonDocument.Parse(output);
                JsonElement root = document.RootElement;
                return new LazyEpoch(root.GetProperty("windows").GetInt64(), root.GetProperty("batches").GetInt64(),
                    root.GetProperty("seconds").GetDouble(), root.GetProperty("vmhwm_bytes").GetInt64(),
                    root.GetProperty("vmhwm_before_epoch_bytes").GetInt64(), root.GetProperty("rss_anon_bytes").GetInt64(),
                    root.GetProperty("rss_file_bytes").GetInt64(), root.GetProperty("rss_before_frames_bytes").GetInt64());
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException)
            {
                throw new InvalidOperationException($"perf memory-child printed no readable result ({e.Message}): {output}", e);
            }
        }

        /// <summary>This program again: its apphost, or <c>dotnet perf.dll</c> when it was started that way.</summary>
        private static (string File, string[] Prefix) SelfCommand()
        {
            string process = Environment.ProcessPath ?? throw new InvalidOperationException("the process path is unknown");
            return Path.GetFileNameWithoutExtension(process) == "dotnet"
                ? (process, [Environment.GetCommandLineArgs()[0]])
                : (process, []);
        }
    }

    /// <summary>One epoch over <c>order</c> in batches of 256, gathered into a reused output of <c>outputType</c> (and one for the short last batch).</summary>
    private sealed class Epoch : IDisposable
    {
        private readonly DType _outputType;
        private readonly Tensor _source;
        private readonly int _window;
        private readonly long[] _order;
        private readonly Tensor _full;
        private readonly Tensor? _last;

        public Epoch(Tensor source, int window, long[] order, DType outputType)
        {
            _outputType = outputType;
            _source = source;
            _window = window;
            _order = order;
            long tail = order.Length % Batch;
            _full = Tensor.Empty(outputType, Shape(Batch), Device.Cpu);
            _last = tail == 0 ? null : Tensor.Empty(outputType, Shape(tail), Device.Cpu);
        }

        public long Batches => MemoryScenario.Batches(_order.Length);

        public void Step(long batch)
        {
            int from = checked((int)(batch * Batch));
            int count = Math.Min(Batch, _order.Length - from);
            Windows.Gather(_source, _order.AsSpan(from, count), _window, count == Batch ? _full : _last, _outputType);
        }

        /// <summary>The whole epoch; returns its wall time in seconds.</summary>
        public double Run()
        {
            long began = Stopwatch.GetTimestamp();
            for (long b = 0; b < Batches; b++) Step(b);
            return Stopwatch.GetElapsedTime(began).TotalSeconds;
        }

        public byte[] FirstBatchBytes() => Tensor.CpuBytes(_full.Buffer, _full.ByteCount).ToArray();

        public void Dispose()
        {
            _full.Dispose();
            _last?.Dispose();
        }

        private long[] Shape(long batch) => [batch, _window, .. _source.Shape.Skip(1)];
    }
}

/// <summary>Fields of <c>/proc/self/status</c>, in bytes (Linux reports them in kB).</summary>
internal static class ProcStatus
{
    public static long Bytes(string field)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }
}
