using System.Text.Json;
using NativeTensor.Cases;
using NativeTensor.Memory;

namespace NativeTensor.Perf;

/// <summary>One timed attention call, or a peer's, with the flops it is credited with (2 D per visible pair per product).</summary>
internal sealed record AttentionRow(string Op, string Shape, string Backend, Timing Time, double Flops, bool IsPeer = false)
{
    public double Gflops => Flops / (Time.MedianMs * 1e6);
}

/// <summary>
/// Attention.Forward and Backward on every device: the shared <see cref="AttentionCase"/>s of <see cref="PerfCases.Attention"/>
/// (each element within the tests' derived bound), then the issue's targets measured side by side in one run: the causal
/// Float32 forward and backward at B 1, H 8, N 2048, D 64 beside <c>Linalg.MatMul</c> 1024^3, NumPy's naive attention and
/// PyTorch's; sliding-window time against N; the peak RSS a long windowed forward and backward adds; and the decode of one
/// token over a 32K-token KV cache beside one read of the cache's bytes.
/// </summary>
internal static class Attention
{
    /// <summary>The causal shape of the CPU targets: B 1, H 8, N = M = 2048, D 64, Float32.</summary>
    public static AttentionCase Causal(bool backward) => new(1, 8, 8, 2048, 2048, 64, true, 0, DType.Float32, backward, 77);

    /// <summary>Sliding window 256 at N = M = <paramref name="n"/>, B 1, H 8, D 64, Float32.</summary>
    public static AttentionCase Windowed(int n, bool backward) => new(1, 8, 8, n, n, 64, true, 256, DType.Float32, backward, 78);

    private static readonly int[] WindowLengths = [8192, 16384, 32768];

    private const double ForwardOverMatMul = 0.5, BackwardOverMatMul = 0.35, WindowGrowth = 4.6, DecodeOverRead = 0.8;
    private const long RssBudget = 96L << 20;

    public static (List<AttentionRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report, bool quick)
    {
        report.Section("Attention: Attention.Forward / Backward");
        RunPlan attention = plan with { Reps = Math.Min(plan.Reps, quick ? 3 : 10), WarmupReps = Math.Min(plan.WarmupReps, 2), WarmupMilliseconds = 0 };
        (List<AttentionRow> rows, bool failed) = ValidatedTiming.Run(devices, report, PerfCases.Attention, device => Time(device, attention, report));
        if (rows.Any(r => r.Backend == Device.Cpu.Spec))
        {
            rows.AddRange(NumpyPeer(attention, report));
            rows.AddRange(TorchPeer("cpu", Device.Cpu.Spec, [Causal(false)], attention, report));
        }
        Print(rows, report);
        if (devices.Any(d => d.Kind == DeviceKind.Cpu) && !failed) CpuTargets(rows, attention, report, quick);
        foreach (Device cuda in devices.Where(d => d.Kind == DeviceKind.Cuda && rows.Any(r => r.Backend == d.Spec)))
            rows.AddRange(GpuTargets(cuda, attention, report));
        return (rows, failed);
    }

    /// <summary>The causal pair beside MatMul 1024^3, interleaved rep by rep so the ratios come from one stretch of the machine's time.</summary>
    private static List<AttentionRow> Time(Device device, RunPlan plan, Report report)
    {
        IOpCase matmul = PerfCases.TimedLinalg[0];
        IOpCase[] timed = [matmul, Causal(false), Causal(true)];
        var prepared = timed.Select(c => c.Prepare(device)).ToList();
        try
        {
            Console.WriteLine($"timing attention on {device.Spec} ...");
            Timing[] timings = Timer.Interleaved(device.Backend, plan, [.. prepared.Select(p => (Action<int>)(_ => p.Run()))]);
            return [.. timed.Select((c, i) => new AttentionRow(i == 0 ? "matmul f32" : c.Op, c is AttentionCase a ? Shape(a) : "1024x1024x1024",
                device.Spec, timings[i], c.Flops))];
        }
        finally
        {
            foreach (PreparedCase p in prepared) p.Dispose();
        }
    }

    private static string Shape(AttentionCase c) =>
        $"B{c.Batch} H{c.QueryHeads}/{c.KvHeads} N{c.Queries} M{c.Keys} D{c.HeadDim} {c.DType}{(c.Causal ? " causal" : "")}{(c.Window > 0 ? $" w{c.Window}" : "")}";

    /// <summary>Window time against N, the RSS a long windowed pass adds, and the targets, on the CPU.</summary>
    private static void CpuTargets(List<AttentionRow> rows, RunPlan plan, Report report, bool quick)
    {
        AttentionRow? matmul = rows.FirstOrDefault(r => r.Backend == Device.Cpu.Spec && r.Op == "matmul f32");
        AttentionRow? forward = rows.FirstOrDefault(r => r.Backend == Device.Cpu.Spec && r.Op == "attention.forward");
        AttentionRow? backward = rows.FirstOrDefault(r => r.Backend == Device.Cpu.Spec && r.Op == "attention.backward");
        if (matmul is not null && forward is not null && backward is not null)
        {
            Say(report, $"cpu causal forward >= {ForwardOverMatMul}x MatMul 1024^3 GFLOP/s", forward.Gflops / matmul.Gflops, ForwardOverMatMul,
                $"{forward.Gflops:F1} / {matmul.Gflops:F1} GFLOP/s = {forward.Gflops / matmul.Gflops:F2}x");
            Say(report, $"cpu causal backward >= {BackwardOverMatMul}x MatMul 1024^3 GFLOP/s", backward.Gflops / matmul.Gflops, BackwardOverMatMul,
                $"{backward.Gflops:F1} / {matmul.Gflops:F1} GFLOP/s = {backward.Gflops / matmul.Gflops:F2}x");
        }

        Console.WriteLine("timing sliding-window attention on cpu ...");
        var windowRows = new List<AttentionRow>();
        foreach (bool isBackward in new[] { false, true })
        {
            var cases = WindowLengths.Select(n => Windowed(n, isBackward)).ToArray();
            var prepared = cases.Select(c => c.Prepare(Device.Cpu)).ToList();
            try
            {
                Timing[] timings = Timer.Interleaved(Device.Cpu.Backend, plan with { Reps = Math.Min(plan.Reps, quick ? 2 : 5) },
                    [.. prepared.Select(p => (Action<int>)(_ => p.Run()))]);
                windowRows.AddRange(cases.Select((c, i) => new AttentionRow(c.Op, Shape(c), Device.Cpu.Spec, timings[i], c.Flops)));
            }
            finally
            {
                foreach (PreparedCase p in prepared) p.Dispose();
            }
        }
        Print(windowRows, report);
        foreach (string op in new[] { "attention.forward", "attention.backward" })
        {
            AttentionRow shortest = windowRows.First(r => r.Op == op), longest = windowRows.Last(r => r.Op == op);
            double growth = longest.Time.MedianMs / shortest.Time.MedianMs;
            Say(report, $"cpu window 256 {op[10..]}: t(4N) / t(N) <= {WindowGrowth} (N 8K -> 32K)", WindowGrowth / growth, 1,
                $"{longest.Time.MedianMs:F1} / {shortest.Time.MedianMs:F1} ms = {growth:F2}");
        }

        Console.WriteLine("timing decode over a KV cache on cpu ...");
        Decode(plan, report);

        (long added, long outputs) = WindowedPeak();
        Say(report, $"cpu window 256, N 32K: forward + backward add <= {RssBudget >> 20} MB of peak RSS beyond their inputs and outputs",
            RssBudget / (double)Math.Max(1, added - outputs), 1,
            $"peak RSS +{added / 1e6:F1} MB, of which {outputs / 1e6:F1} MB are the output, log-sum-exp, dq, dk and dv: {Math.Max(0, added - outputs) / 1e6:F1} MB of working memory " +
            $"(a [N, N] Float32 score matrix per head would be {32768L * 32768 * 4 * 8 / 1e9:F1} GB)");
    }

    /// <summary>
    /// The GPU targets: BFloat16 causal forward and backward at D 64 and 128, N 2K to 16K (B x H = 32 heads of work at
    /// 2K, 16 beyond), beside PyTorch's scaled_dot_product_attention on its FlashAttention-2 backend; and window 256 at
    /// N 8K and 32K for linear time.
    /// </summary>
    private static List<AttentionRow> GpuTargets(Device cuda, RunPlan plan, Report report)
    {
        AttentionCase[] flash =
        [
            .. from d in new[] { 64, 128 }
               from n in new[] { 2048, 8192, 16384 }
               from backward in new[] { false, true }
               select new AttentionCase(n == 2048 ? 2 : 1, 16, 16, n, n, d, true, 0, DType.BFloat16, backward, 79),
        ];
        AttentionCase[] windows = [.. from n in new[] { 8192, 32768 } select new AttentionCase(1, 16, 16, n, n, 64, true, 256, DType.BFloat16, false, 80)];
        AttentionCase[] all = [.. flash, .. windows];
        Console.WriteLine($"timing BFloat16 attention on {cuda.Spec} ...");
        var prepared = all.Select(c => c.Prepare(cuda)).ToList();
        List<AttentionRow> rows;
        try
        {
            Timing[] timings = Timer.Interleaved(cuda.Backend, plan, [.. prepared.Select(p => (Action<int>)(_ => p.Run()))]);
            rows = [.. all.Select((c, i) => new AttentionRow(c.Op, Shape(c), cuda.Spec, timings[i], c.Flops))];
        }
        finally
        {
            foreach (PreparedCase p in prepared) p.Dispose();
        }
        rows.AddRange(TorchPeer($"cuda:{cuda.Index}", cuda.Spec, [.. flash.Where(c => !c.Backward)], plan, report));
        Print(rows, report);
        foreach (AttentionRow row in rows.Where(r => !r.IsPeer && r.Shape.EndsWith("causal", StringComparison.Ordinal)))
        {
            AttentionRow? torch = rows.FirstOrDefault(p => p.IsPeer && p.Shape == row.Shape && p.Op.Contains(row.Op[10..], StringComparison.Ordinal));
            double needed = row.Op.EndsWith("forward", StringComparison.Ordinal) ? 0.6 : 0.5;
            if (torch is null) report.Line($"{cuda.Spec} {row.Op} {row.Shape} >= {needed}x FlashAttention-2: no torch figure this run");
            else
                Say(report, $"{cuda.Spec} {row.Op} {row.Shape} >= {needed}x FlashAttention-2 (torch sdpa)", row.Gflops / torch.Gflops, needed,
                    $"{row.Gflops / 1e3:F1} / {torch.Gflops / 1e3:F1} TFLOP/s = {row.Gflops / torch.Gflops:F2}x");
        }
        AttentionRow shortWindow = rows.First(r => r.Shape.Contains("N8192", StringComparison.Ordinal) && r.Shape.EndsWith("w256", StringComparison.Ordinal));
        AttentionRow longWindow = rows.First(r => r.Shape.Contains("N32768", StringComparison.Ordinal) && r.Shape.EndsWith("w256", StringComparison.Ordinal));
        double growth = longWindow.Time.MedianMs / shortWindow.Time.MedianMs;
        Say(report, $"{cuda.Spec} window 256 forward: t(4N) / t(N) <= {WindowGrowth} (N 8K -> 32K)", WindowGrowth / growth, 1,
            $"{longWindow.Time.MedianMs:F2} / {shortWindow.Time.MedianMs:F2} ms = {growth:F2}");
        return rows;
    }

    /// <summary>
    /// One token's decode (query [1, 8, 1, 64]) over a 32K-token <see cref="KvCache"/> of 8 heads, read in place, beside
    /// one read of the same bytes (<c>Precision.FindNonFinite</c> over two tensors the size of the cache's key and value
    /// stores: every element read once, nothing written), interleaved; for each cache dtype.
    /// </summary>
    private static void Decode(RunPlan plan, Report report)
    {
        const int heads = 8, tokens = 32768, d = 64;
        var cells = new List<string[]> { new[] { "cache", "decode ms (min–max)", "read once ms (min–max)", "cache GB/s in decode", "read / decode" } };
        foreach (DType dtype in new[] { DType.Float32, DType.BFloat16 })
        {
            using var cache = new KvCache(heads, tokens, d, dtype);
            var random = new Random(9);
            const int block = 4096;
            using (Tensor keys = Tensor.Empty(dtype, [heads, block, d]))
            {
                for (int appended = 0; appended < tokens; appended += block)
                {
                    keys.Device.Backend.Write(keys.Buffer, 0, CaseBytes.Magnitudes(dtype, keys.ElementCount, appended));
                    cache.Append(keys, keys);
                }
            }
            using Tensor query = Tensor.Empty(dtype, [1, heads, 1, d]);
            query.Device.Backend.Write(query.Buffer, 0, AttentionData.Values(random, dtype, heads * d, 1));
            using Tensor output = Tensor.Empty(dtype, [1, heads, 1, d]);
            using Tensor storeK = Tensor.Empty(dtype, [heads, tokens, d]), storeV = Tensor.Empty(dtype, [heads, tokens, d]);
            storeK.Device.Backend.Write(storeK.Buffer, 0, new byte[storeK.ByteCount]);
            storeV.Device.Backend.Write(storeV.Buffer, 0, new byte[storeV.ByteCount]);
            // A rep takes milliseconds, so a hundred of them (a median that the load spikes of a shared machine do not move) cost
            // little; a second of warm-up (the default plan's, which the attention plan drops for its long cases) lets tier-1
            // code of both calls arrive before the timed reps.
            Timing[] t = Timer.Interleaved(Device.Cpu.Backend, plan with { Reps = Math.Max(plan.Reps, 100), WarmupReps = 10, WarmupMilliseconds = 1000 },
                [_ => cache.Attend(query, output: output), _ => NativeTensor.Precision.FindNonFinite([storeK, storeV])]);
            double ratio = t[1].MedianMs / t[0].MedianMs;
            cells.Add([$"{heads} x {tokens} x {d} {dtype} ({cache.ByteCount / 1e6:F0} MB)", $"{t[0].MedianMs:F2} ({t[0].MinMs:F2}–{t[0].MaxMs:F2})",
                $"{t[1].MedianMs:F2} ({t[1].MinMs:F2}–{t[1].MaxMs:F2})", $"{cache.ByteCount / (t[0].MedianMs * 1e6):F1}", $"{ratio:F2}"]);
            Say(report, $"cpu decode of one token over a 32K-token {dtype} cache >= {DecodeOverRead}x the speed of reading its bytes once", ratio, DecodeOverRead,
                $"read {t[1].MedianMs:F2} ms / decode {t[0].MedianMs:F2} ms = {ratio:F2}");
        }
        report.Table(cells, [false, true, true, true, true]);
    }

    /// <summary>
    /// Peak RSS added by Forward and Backward at N 32K, window 256, with q, k, v and dO already resident; and the bytes of the
    /// tensors the calls return (output, log-sum-exp, dq, dk, dv), which any implementation must hold.
    /// </summary>
    private static (long Added, long Outputs) WindowedPeak()
    {
        AttentionCase c = Windowed(WindowLengths[^1], backward: true);
        using Tensor q = Tensor.Empty(DType.Float32, [1, c.QueryHeads, c.Queries, c.HeadDim]);
        using Tensor k = Tensor.Empty(DType.Float32, [1, c.KvHeads, c.Keys, c.HeadDim]);
        using Tensor v = Tensor.Empty(DType.Float32, [1, c.KvHeads, c.Keys, c.HeadDim]);
        using Tensor dO = Tensor.Empty(DType.Float32, [1, c.QueryHeads, c.Queries, c.HeadDim]);
        q.AsSpan<float>().Fill(0.5f);
        k.AsSpan<float>().Fill(0.25f);
        v.AsSpan<float>().Fill(1);
        dO.AsSpan<float>().Fill(1);
        GC.Collect();
        using MemoryMeasurement scope = MemoryBudget.Measure();
        using Tensor lse = Tensor.Empty(DType.Float32, [1, c.QueryHeads, c.Queries]);
        using Tensor o = NativeTensor.Attention.Forward(q, k, v, c.Mask, logSumExp: lse);
        (Tensor dq, Tensor dk, Tensor dv) = NativeTensor.Attention.Backward(dO, q, k, v, o, lse, c.Mask);
        long outputs = o.ByteCount + lse.ByteCount + dq.ByteCount + dk.ByteCount + dv.ByteCount;
        dq.Dispose();
        dk.Dispose();
        dv.Dispose();
        return (scope.PeakRssDeltaBytes, outputs);
    }

    private static List<AttentionRow> NumpyPeer(RunPlan plan, Report report)
    {
        AttentionCase c = Causal(false);
        string caseText = $"{c.Batch},{c.QueryHeads},{c.Queries},{c.Keys},{c.HeadDim},{(c.Causal ? 1 : 0)},{c.Window}";
        return Peer("/usr/bin/python3", "attention_numpy.py", ["--case", caseText], Device.Cpu.Spec, "numpy", [c], plan, report);
    }

    /// <summary>PyTorch's attention on <paramref name="device"/> (cpu or cuda:N) for <paramref name="cases"/>, forward and backward.</summary>
    public static List<AttentionRow> TorchPeer(string device, string backend, IReadOnlyList<AttentionCase> cases, RunPlan plan, Report report)
    {
        string? python = new[] { "python3", "/usr/bin/python3" }.FirstOrDefault(p => Peers.RunProcess(p, ["-c", "import torch"], TimeSpan.FromMinutes(1)).Exit == 0);
        if (python is null)
        {
            report.Line("peer torch: not available (no python3 here imports torch)");
            return [];
        }
        string[] args = [.. cases.SelectMany(c => new[] { "--case",
            $"{c.Batch},{c.QueryHeads},{c.Queries},{c.Keys},{c.HeadDim},{(c.Causal ? 1 : 0)},{c.Window},{c.DType.ToString().ToLowerInvariant()}" }), "--device", device];
        return Peer(python, "attention_torch.py", args, backend, "torch", cases, plan, report);
    }

    private static List<AttentionRow> Peer(string python, string script, string[] args, string backend, string peer, IReadOnlyList<AttentionCase> cases,
        RunPlan plan, Report report)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "peers", script);
        (int exit, string output, string error) = Peers.RunProcess(python,
            [path, .. args, "--warmup", $"{plan.WarmupReps}", "--reps", $"{plan.Reps}"], TimeSpan.FromMinutes(10));
        if (exit != 0)
        {
            report.Line($"peer {peer}: not available ({script} exited {exit}: {error.Trim().Split('\n')[^1]})");
            return [];
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(output);
            JsonElement root = document.RootElement;
            string version = root.GetProperty("version").GetString() ?? "?";
            if (root.TryGetProperty("refused", out JsonElement refused))
                foreach (JsonProperty r in refused.EnumerateObject()) report.Line($"peer {peer}: {r.Name} refused: {r.Value.GetString()}");
            var rows = new List<AttentionRow>();
            foreach (JsonElement r in root.GetProperty("rows").EnumerateArray())
            {
                int index = args.Where((a, i) => i % 2 == 1 && args[i - 1] == "--case").ToList().IndexOf(r.GetProperty("case").GetString() ?? "");
                AttentionCase c = cases[Math.Max(0, index)];
                bool isBackward = r.GetProperty("op").GetString() == "backward";
                string how = r.TryGetProperty("backend", out JsonElement b) ? $" ({b.GetString()})" : "";
                rows.Add(new AttentionRow($"peer: {peer} {r.GetProperty("op").GetString()}{how}", Shape(c), $"{backend} {peer} {version}",
                    new Timing(r.GetProperty("median_s").GetDouble() * 1e3, r.GetProperty("min_s").GetDouble() * 1e3, r.GetProperty("max_s").GetDouble() * 1e3,
                        r.GetProperty("reps").GetInt32()), (c with { Backward = isBackward }).Flops, IsPeer: true));
            }
            return rows;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            report.Line($"peer {peer}: not available ({script} printed no readable result: {e.Message})");
            return [];
        }
    }

    private static void Print(IReadOnlyList<AttentionRow> rows, Report report)
    {
        var cells = new List<string[]> { new[] { "op", "shape", "backend", "median ms (min–max)", "GFLOP/s", "vs matmul 1024^3", "vs peer" } };
        foreach (AttentionRow row in rows)
        {
            string device = row.Backend.Split(' ')[0];
            AttentionRow? matmul = rows.FirstOrDefault(r => r.Backend == device && r.Op == "matmul f32");
            var peers = row.IsPeer || row.Op == "matmul f32" ? [] : rows.Where(p => p.IsPeer && p.Shape == row.Shape && p.Backend.StartsWith(device + " ", StringComparison.Ordinal)
                && p.Op.Contains(row.Op[10..], StringComparison.Ordinal)).ToList();
            cells.Add(
            [
                row.Op, row.Shape, row.Backend, $"{row.Time.MedianMs:F2} ({row.Time.MinMs:F2}–{row.Time.MaxMs:F2})", $"{row.Gflops:F1}",
                matmul is null || row.Op == "matmul f32" ? "—" : $"{row.Gflops / matmul.Gflops:F2}x",
                peers.Count == 0 ? "—" : string.Join(", ", peers.Select(p => $"{row.Gflops / p.Gflops:F2}x {p.Backend.Split(' ')[1]}")),
            ]);
        }
        report.Table(cells, [false, false, false, true, true, true, true]);
        report.Line("GFLOP/s: 2 D flops per visible (query, key) pair per product, two products forward, five backward (FlashAttention-2's count; exp not counted).");
    }

    private static void Say(Report report, string target, double measured, double needed, string figures) =>
        report.Line($"{(measured >= needed ? "met   " : "MISSED")} {target}: {figures}");
}
