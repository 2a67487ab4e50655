using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace NativeTensor.Perf;

/// <summary>
/// The peers: <c>peers/windows_numpy.py</c> (CPU) and <c>peers/windows_torch.py</c> (CUDA) gather the very same
/// batches (the start sets are handed over in a file) and print one JSON object, read here with
/// <see cref="JsonDocument"/> so the trimmed build needs no reflection.
/// </summary>
internal static class Peers
{
    /// <summary>Debian's interpreter, which has python3-numpy; the first python3 on PATH may not.</summary>
    private const string NumpyPython = "/usr/bin/python3";

    private static readonly TimeSpan PeerTimeout = TimeSpan.FromMinutes(3);

    /// <summary>NumPy rows for every case, measured against the CPU copy; a line saying why when NumPy cannot run.</summary>
    public static List<Row> Numpy(IReadOnlyList<CaseStarts> cases, RunPlan plan, Report report)
    {
        if (!File.Exists(NumpyPython))
        {
            report.Line($"peer numpy: not available ({NumpyPython} not found)");
            return [];
        }
        return RunScript(NumpyPython, "windows_numpy.py", [], Device.Cpu.Spec, cases, plan, report, "numpy");
    }

    /// <summary>PyTorch rows on <paramref name="cuda"/>, from the first of python3 on PATH and Debian's that imports torch.</summary>
    public static List<Row> Torch(Device cuda, IReadOnlyList<CaseStarts> cases, RunPlan plan, Report report) =>
        TorchPython(report) is { } python
            ? RunScript(python, "windows_torch.py", ["--device", $"cuda:{cuda.Index}"], cuda.Spec, cases, plan, report, "torch")
            : [];

    /// <summary>
    /// PyTorch's unscale and AdamW step on <paramref name="cuda"/> (<c>peers/mixed_precision_torch.py</c>), as rows whose
    /// op names say which of ours they stand beside; backend "<c>cuda:N torch V</c>".
    /// </summary>
    public static List<ConversionRow> TorchMixedPrecision(Device cuda, long elements, RunPlan plan, Report report)
    {
        if (TorchPython(report) is not { } python) return [];
        string path = Path.Combine(AppContext.BaseDirectory, "peers", "mixed_precision_torch.py");
        (int exit, string output, string error) = RunProcess(python,
            [path, "--elements", $"{elements}", "--warmup", $"{plan.WarmupReps}", "--reps", $"{Math.Min(plan.Reps, 30)}", "--device", $"cuda:{cuda.Index}"], PeerTimeout);
        if (exit != 0)
        {
            report.Line($"peer torch: not available (mixed_precision_torch.py exited {exit}: {LastLine(error)})");
            return [];
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(output);
            JsonElement root = document.RootElement;
            string backend = $"{cuda.Spec} torch {root.GetProperty("version").GetString()}";
            foreach (JsonProperty refusal in root.GetProperty("refused").EnumerateObject())
                report.Line($"peer torch: {refusal.Name} refused: {refusal.Value.GetString()}");
            return [.. root.GetProperty("rows").EnumerateArray().Select(r => new ConversionRow(
                $"peer: torch {r.GetProperty("op").GetString()}", backend, elements * r.GetProperty("bytes_per_element").GetInt64(),
                new Timing(r.GetProperty("median_s").GetDouble() * 1e3, r.GetProperty("min_s").GetDouble() * 1e3,
                    r.GetProperty("max_s").GetDouble() * 1e3, r.GetProperty("reps").GetInt32())))];
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            report.Line($"peer torch: not available (mixed_precision_torch.py printed no readable result: {e.Message})");
            return [];
        }
    }

    /// <summary>NumPy's covariance of the batch in <paramref name="file"/> (<c>peers/moments_numpy.py</c>), beside Moments.Update on the CPU.</summary>
    public static List<MomentsRow> NumpyMoments(string file, RunPlan plan, Report report) =>
        File.Exists(NumpyPython) ? MomentsPeer(NumpyPython, "moments_numpy.py", [], Device.Cpu.Spec, file, plan, report)
            : Refused(report, $"peer numpy: not available ({NumpyPython} not found)");

    /// <summary>PyTorch's <c>torch.cov</c> of the same batch on <paramref name="cuda"/> (<c>peers/moments_torch.py</c>).</summary>
    public static List<MomentsRow> TorchMoments(Device cuda, string file, RunPlan plan, Report report) =>
        TorchPython(report) is { } python ? MomentsPeer(python, "moments_torch.py", ["--device", $"cuda:{cuda.Index}"], cuda.Spec, file, plan, report) : [];

    private static List<MomentsRow> Refused(Report report, string line)
    {
        report.Line(line);
        return [];
    }

    /// <summary>Runs a covariance peer on the batch file; one row per variant, backend "<c>device peer version</c>", with its error printed.</summary>
    private static List<MomentsRow> MomentsPeer(string python, string script, string[] extra, string device, string file, RunPlan plan, Report report)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "peers", script);
        (int exit, string output, string error) = RunProcess(python,
            [path, "--batch", file, "--rows", $"{Moments.Rows}", "--features", $"{Moments.Features}", "--reps", $"{Math.Min(plan.Reps, 7)}", .. extra], PeerTimeout);
        if (exit != 0) return Refused(report, $"peer: not available ({script} exited {exit}: {LastLine(error)})");
        try
        {
            using JsonDocument document = JsonDocument.Parse(output);
            JsonElement root = document.RootElement;
            string peer = $"{root.GetProperty("peer").GetString()} {root.GetProperty("version").GetString()}";
            if (root.TryGetProperty("blas", out JsonElement blas)) peer += $" ({blas.GetString()})";
            var rows = new List<MomentsRow>();
            foreach (JsonElement r in root.GetProperty("rows").EnumerateArray())
            {
                string op = r.GetProperty("op").GetString() ?? "?";
                report.Line($"peer {peer} {op}: max-norm relative error {r.GetProperty("max_rel_error").GetDouble():E2} vs float64");
                rows.Add(new MomentsRow($"peer: {op}", $"{device} {peer}", Moments.Flops, new Timing(r.GetProperty("median_s").GetDouble() * 1e3,
                    r.GetProperty("min_s").GetDouble() * 1e3, r.GetProperty("max_s").GetDouble() * 1e3, r.GetProperty("reps").GetInt32())));
            }
            return rows;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return Refused(report, $"peer: not available ({script} printed no readable result: {e.Message})");
        }
    }

    /// <summary>
    /// NumPy's <c>a @ b</c> and <c>x.T @ x</c> on <see cref="Linalg.Shapes"/> (<c>peers/matmul_numpy.py</c>), backend
    /// "<c>cpu numpy V</c>"; the report says which BLAS NumPy actually loaded.
    /// </summary>
    public static List<LinalgRow> NumpyMatMul(RunPlan plan, Report report) =>
        File.Exists(NumpyPython) ? MatMulScript(NumpyPython, "matmul_numpy.py", [], Device.Cpu.Spec, "numpy", plan, report)
            : Refused(report, "numpy", $"{NumpyPython} not found");

    /// <summary>PyTorch's <c>torch.matmul</c> on the same shapes, on <paramref name="cuda"/> (<c>peers/matmul_torch.py</c>, TF32 off).</summary>
    public static List<LinalgRow> TorchMatMul(Device cuda, RunPlan plan, Report report) =>
        TorchPython(report) is { } python
            ? MatMulScript(python, "matmul_torch.py", ["--device", $"cuda:{cuda.Index}"], cuda.Spec, "torch", plan, report)
            : [];

    private static List<LinalgRow> MatMulScript(string python, string script, string[] extra, string device, string peer, RunPlan plan, Report report)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "peers", script);
        string[] shapes = [.. Linalg.Shapes.SelectMany(s => s.Op == Linalg.SyrkOp ? new[] { "--syrk", $"{s.M},{s.K}" } : ["--matmul", $"{s.M},{s.K},{s.N}"])];
        (int exit, string output, string error) = RunProcess(python,
            [path, .. shapes, "--warmup", $"{plan.WarmupReps}", "--reps", $"{Math.Min(plan.Reps, 30)}", .. extra], PeerTimeout);
        if (exit != 0) return Refused(report, peer, $"{script} exited {exit}: {LastLine(error)}");
        try
        {
            using JsonDocument document = JsonDocument.Parse(output);
            JsonElement root = document.RootElement;
            string backend = $"{device} {peer} {root.GetProperty("version").GetString()}";
            if (root.TryGetProperty("blas", out JsonElement blas))
                report.Line($"peer {peer}: BLAS {string.Join(", ", blas.EnumerateArray().Select(b => b.GetString()))}; threads {root.GetProperty("threads").GetString()}");
            return [.. root.GetProperty("rows").EnumerateArray().Select(r => new LinalgRow(
                r.GetProperty("op").GetString() == "syrk" ? Linalg.SyrkOp : Linalg.MatMulOp,
                r.GetProperty("m").GetInt32(), r.GetProperty("k").GetInt32(), r.GetProperty("n").GetInt32(), backend,
                new Timing(r.GetProperty("median_s").GetDouble() * 1e3, r.GetProperty("min_s").GetDouble() * 1e3,
                    r.GetProperty("max_s").GetDouble() * 1e3, r.GetProperty("reps").GetInt32()), IsPeer: true))];
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return Refused(report, peer, $"{script} printed no readable result: {e.Message}");
        }
    }

    private static List<LinalgRow> Refused(Report report, string peer, string why)
    {
        report.Line($"peer {peer}: not available ({why})");
        return [];
    }

    /// <summary>The first of python3 on PATH and Debian's interpreter that imports torch; null (and a line saying why) if none does.</summary>
    private static string? TorchPython(Report report)
    {
        var failures = new List<string>();
        foreach (string python in new[] { "python3", NumpyPython }.Distinct())
        {
            (int exit, _, string error) = RunProcess(python, ["-c", "import torch"], TimeSpan.FromMinutes(1));
            if (exit == 0) return python;
            failures.Add($"{python} -c \"import torch\" exited {exit}: {LastLine(error)}");
        }
        report.Line($"peer torch: not available ({string.Join("; ", failures)})");
        return null;
    }

    private static List<Row> RunScript(string python, string script, string[] extra, string ceiling,
        IReadOnlyList<CaseStarts> cases, RunPlan plan, Report report, string peer)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "peers", script);
        if (!File.Exists(path))
        {
            report.Line($"peer {peer}: not available ({path} is missing from the build output)");
            return [];
        }
        string folder = Directory.CreateTempSubdirectory("nativetensor-perf-").FullName;
        var rows = new List<Row>();
        try
        {
            foreach (CaseStarts starts in cases)
            {
                GatherCase c = starts.Case;
                string startsFile = Path.Combine(folder, "starts.i64");
                starts.HostGather.WriteTo(startsFile);
                string[] args =
                [
                    path, "--shape", string.Join(",", c.FrameShape), "--dtype", c.DTypeText, "--window", $"{c.Window}",
                    "--batch", $"{c.Batch}", "--starts", startsFile, "--warmup", $"{plan.WarmupReps}", "--reps", $"{plan.Reps}", .. extra,
                ];
                (int exit, string output, string error) = RunProcess(python, args, PeerTimeout);
                if (exit != 0)
                {
                    report.Line($"peer {peer}: not available ({python} {script} exited {exit}: {LastLine(error)})");
                    return rows;
                }
                PeerResult result;
                try { result = PeerResult.Parse(output); }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    report.Line($"peer {peer}: not available ({script} printed no readable result: {e.Message})");
                    return rows;
                }
                rows.Add(new Row($"peer: {result.Method}", c, $"{peer} {result.Version}", ceiling, result.Time, IsPeer: true));
                report.Line($"peer {peer} {result.Version} {c.Label,-12}: {result.Method} fastest of {result.Variants}");
            }
            return rows;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The fields perf reads from a peer's JSON.</summary>
    private sealed record PeerResult(string Method, string Version, Timing Time, string Variants)
    {
        public static PeerResult Parse(string json)
        {
            using JsonDocument document = JsonDocument.Parse(json);
            JsonElement root = document.RootElement;
            var variants = root.GetProperty("variants").EnumerateObject()
                .Select(v => $"{v.Name} {v.Value.GetProperty("median_s").GetDouble() * 1e3:F3} ms");
            return new PeerResult(
                root.GetProperty("method").GetString() ?? "?",
                root.GetProperty("version").GetString() ?? "?",
                new Timing(
                    root.GetProperty("median_s").GetDouble() * 1e3,
                    root.GetProperty("min_s").GetDouble() * 1e3,
                    root.GetProperty("max_s").GetDouble() * 1e3,
                    root.GetProperty("reps").GetInt32()),
                string.Join(", ", variants));
        }
    }

    /// <summary>Runs a program to its end (or kills it at <paramref name="timeout"/>), capturing both streams.</summary>
    public static (int Exit, string Output, string Error) RunProcess(string file, IEnumerable<string> args, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        Process process;
        try { process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start"); }
        catch (System.ComponentModel.Win32Exception e) { return (-1, "", $"{file}: {e.Message}"); }
        using (process)
        {
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                return (-1, output.Result, $"killed after {timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s. {error.Result}");
            }
            return (process.ExitCode, output.Result, error.Result);
        }
    }

    private static string LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "no message";
}
