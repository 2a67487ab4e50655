using System.Diagnostics;
using NativeTensor.Memory;
using NativeTensor.Memory.Files;

namespace NativeTensor.Perf;

/// <summary>What the mapped-file section measured, for the targets summary.</summary>
/// <param name="WarmMappedOverRam">Mapped gather batches/s over RAM gather batches/s, page cache warm (0 when their batches differed).</param>
internal sealed record MappedResult(double WarmMappedOverRam, double ColdBatchesPerSecond, double ColdGbps, long MappedPeakBytes, long RamPeakBytes,
    MemoryScenario.LazyEpoch MappedEpoch);

/// <summary>
/// The memory scenario's frames (380,000 x 287 float32, 436 MB) written with NpyWriter to a temp file, then gathered
/// (batch 256, window 30, random starts) from the mapped file and from the same frames in RAM: warm (side by side,
/// the same starts for both, rounds alternating which goes first), cold (the file dropped from the page cache before
/// each timed pass), and one full lazy epoch over the mapped file in a child process for its peak RSS.
/// </summary>
internal static class MappedFiles
{
    private const long Frames = 380_000;
    private const int Row = 287, Window = 30, Batch = 256;
    private const int WarmBatchesPerPass = 100, ColdBatchesPerPass = 20;

    private static long BatchBytes => (long)Batch * Window * Row * sizeof(float);

    public static MappedResult Run(Report report, bool quick)
    {
        string path = Path.Combine(Path.GetTempPath(), $"nativetensor-perf-frames-{Environment.ProcessId}.npy");
        try
        {
            using Tensor ram = Tensor.Empty(DType.Float32, [Frames, Row], Device.Cpu);
            Span<float> values = ram.AsSpan<float>();
            for (int i = 0; i < values.Length; i++) values[i] = i * 0.001f;

            long began = Stopwatch.GetTimestamp();
            using (var writer = new NpyWriter(path, DType.Float32, Row))
                for (long r = 0; r < Frames; r += 10_000)
                    using (Tensor rows = Tensor.ViewOfHostMemory(DType.Float32, [Math.Min(10_000, Frames - r), Row], ram.Buffer, ram.ByteCount, r * Row * sizeof(float), readOnly: true))
                        writer.Append(rows); // a batch as a producer would hand it over: a view, no copy
            double writeSeconds = Stopwatch.GetElapsedTime(began).TotalSeconds;
            report.Line($"file      : {path} ({new FileInfo(path).Length / 1e6:F1} MB), written by NpyWriter in 10,000-row batches at {ram.ByteCount / writeSeconds / 1e9:F2} GB/s (page cache, not synced)");

            using MappedTensor mapped = MappedTensor.OpenNpy(path);
            if (!Bytes(mapped.Tensor).SequenceEqual(Bytes(ram)))
                throw new InvalidOperationException("the mapped frames differ from the frames in RAM that were written");
            var random = new Random(11);
            int rounds = quick ? 3 : 9;
            long[][] sets = [.. Enumerable.Range(0, rounds + 1).Select(_ => Starts(random, WarmBatchesPerPass * Batch))];
            using Tensor fromFile = Tensor.Empty(DType.Float32, [Batch, Window, Row], Device.Cpu);
            using Tensor fromRam = Tensor.Empty(DType.Float32, [Batch, Window, Row], Device.Cpu);
            for (int b = 0; b < 4; b++)
            {
                Windows.Gather(mapped.Tensor, sets[0].AsSpan(b * Batch, Batch), Window, fromFile);
                Windows.Gather(ram, sets[0].AsSpan(b * Batch, Batch), Window, fromRam);
                if (!Bytes(fromFile).SequenceEqual(Bytes(fromRam)))
                    throw new InvalidOperationException($"batch {b}: the mapped gather differs from the RAM gather");
            }
            report.Line($"validated : mapped file == frames in RAM byte for byte; 4 gathered batches equal");

            // Warm: every page in the page cache and mapped into this process before any clock starts.
            float sink = 0;
            ReadOnlySpan<float> file = mapped.Tensor.AsReadOnlySpan<float>();
            for (int i = 0; i < file.Length; i += 1024) sink += file[i];
            Pass(mapped.Tensor, fromFile, sets[0]);
            Pass(ram, fromRam, sets[0]);
            var fileMs = new double[rounds];
            var ramMs = new double[rounds];
            for (int r = 0; r < rounds; r++)
            {
                long[] starts = sets[r + 1];
                if (r % 2 == 0) { fileMs[r] = Pass(mapped.Tensor, fromFile, starts); ramMs[r] = Pass(ram, fromRam, starts); }
                else { ramMs[r] = Pass(ram, fromRam, starts); fileMs[r] = Pass(mapped.Tensor, fromFile, starts); }
            }
            double fileRate = WarmBatchesPerPass / (Timing.Median(fileMs) / 1e3), ramRate = WarmBatchesPerPass / (Timing.Median(ramMs) / 1e3);
            report.Line($"warm      : {rounds} rounds of {WarmBatchesPerPass} batches each way, the same fresh starts for both in a round, order alternating; median pass");
            report.Line($"  from RAM                {ramRate:N0} batches/s ({Gbps(ramRate):F2} GB/s) (min-max pass {ramMs.Min():F1}-{ramMs.Max():F1} ms)");
            report.Line($"  from mapped file        {fileRate:N0} batches/s ({Gbps(fileRate):F2} GB/s) (min-max pass {fileMs.Min():F1}-{fileMs.Max():F1} ms)");
            report.Line($"  mapped / RAM            {fileRate / ramRate:F3}");

            WarmPageCache(path);
            MemoryScenario.LazyEpoch inRam = MemoryScenario.LazyEpoch.InChildProcess(Frames);
            MemoryScenario.LazyEpoch fromMapped = MemoryScenario.LazyEpoch.InChildProcess(Frames, mappedPath: path);
            report.Line($"lazy epoch: child processes `perf memory-child` (frames in RAM) and `perf memory-child --mapped FILE` (frames mapped), page cache warm");
            report.Line($"  frames in RAM           peak RSS {MB(inRam.PeakBytes)}; {inRam.Batches / inRam.Seconds:N0} batches/s");
            report.Line($"  frames mapped           peak RSS {MB(fromMapped.PeakBytes)}; {fromMapped.Batches / fromMapped.Seconds:N0} batches/s ({fromMapped.Batches / fromMapped.Seconds / (inRam.Batches / inRam.Seconds):F2} of RAM's)");
            report.Line($"  at the epoch's end      RAM: anonymous {MB(inRam.RssAnonBytes)}, file {MB(inRam.RssFileBytes)}; mapped: anonymous {MB(fromMapped.RssAnonBytes)}, file {MB(fromMapped.RssFileBytes)}");
            report.Line($"  note: the mapped epoch's file pages are clean page cache: counted in RSS, but the kernel can drop and re-read them under memory pressure, where anonymous frames would have to stay or swap");
            (double coldRate, _) = Cold(report, mapped, fromFile, random, quick ? 2 : 4);

            GC.KeepAlive(sink);
            return new MappedResult(fileRate / ramRate, coldRate, Gbps(coldRate), fromMapped.PeakBytes, inRam.PeakBytes, fromMapped);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Passes of gathers each begun with nothing of the file in memory: this process's pages dropped, then the page cache's.</summary>
    private static (double Rate, double Ms) Cold(Report report, MappedTensor mapped, Tensor output, Random random, int passes)
    {
        var ms = new double[passes];
        long resident = 0;
        int pages = 0;
        using var handle = File.OpenHandle(mapped.Path);
        for (int p = 0; p < passes; p++)
        {
            long[] starts = Starts(random, ColdBatchesPerPass * Batch);
            mapped.Mapping.Advise(0, mapped.Mapping.Length, PageAdvice.DontNeed);
            if (!FileMapping.DropFromPageCache(handle)) throw new InvalidOperationException("posix_fadvise(DONTNEED) was refused: no cold pass possible");
            mapped.Mapping.Advise(mapped.ByteOffset, mapped.ByteCount, PageAdvice.Random);
            bool[] before = mapped.Mapping.ResidentPages() ?? [];
            resident = Math.Max(resident, before.Count(r => r));
            ms[p] = Pass(mapped.Tensor, output, starts);
            pages = (mapped.Mapping.ResidentPages() ?? []).Count(r => r);
        }
        double rate = ColdBatchesPerPass / (Timing.Median(ms) / 1e3);
        report.Line($"cold      : {passes} passes of {ColdBatchesPerPass} batches, each after madvise(DONTNEED) + posix_fadvise(DONTNEED) of the whole file (at most {resident} pages left resident)");
        report.Line($"  from mapped file        {rate:N1} batches/s ({Gbps(rate):F2} GB/s), median pass {Timing.Median(ms):F0} ms; a pass faulted in {pages:N0} of {mapped.Mapping.Length / Environment.SystemPageSize:N0} pages ({pages * (double)Environment.SystemPageSize / 1e6:F0} MB read)");
        return (rate, Timing.Median(ms));
    }

    /// <summary>Reads the whole file once, so the child's epoch finds every page in the page cache.</summary>
    private static void WarmPageCache(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        var block = new byte[4 << 20];
        while (stream.Read(block) > 0) { }
    }

    /// <summary>Gathers every batch of <paramref name="starts"/> into <paramref name="output"/>; returns the wall time in ms.</summary>
    private static double Pass(Tensor frames, Tensor output, long[] starts)
    {
        long began = Stopwatch.GetTimestamp();
        for (int b = 0; b + Batch <= starts.Length; b += Batch) Windows.Gather(frames, starts.AsSpan(b, Batch), Window, output);
        return Stopwatch.GetElapsedTime(began).TotalMilliseconds;
    }

    private static ReadOnlySpan<byte> Bytes(Tensor t) => Tensor.CpuBytes(t.Buffer, t.ByteCount);

    private static long[] Starts(Random random, int count)
    {
        var starts = new long[count];
        for (int i = 0; i < count; i++) starts[i] = random.NextInt64(Frames - Window + 1);
        return starts;
    }

    /// <summary>GB/s for a batch rate: each batch reads and writes its bytes once.</summary>
    private static double Gbps(double batchesPerSecond) => batchesPerSecond * BatchBytes * 2 / 1e9;

    private static string MB(double bytes) => $"{bytes / 1e6:N1} MB";
}
