using System.Globalization;
using System.Text.RegularExpressions;
using NativeTensor.Cases;

namespace NativeTensor.Perf;

/// <summary>
/// <c>dotnet run -c Release --project perf [-- command] [--quick] [--device spec] [--out path]</c>: validates every
/// op on every available device against the reference, times it beside the device's own copy of the same bytes and
/// beside a peer, measures the memory scenario, and saves the printed report as markdown.
/// </summary>
internal static partial class Program
{
    private const string Usage = """
        usage: perf [all | validate | linalg | moments | attention | memory | mapped | bdn [BenchmarkDotNet args] | memory-child [--frames N] [--bfloat16] [--mapped FILE]] [--quick] [--device SPEC] [--only SECTIONS] [--out PATH]
          all (default)  validate every op on every device, time the gathers, run the peers and the memory scenario
          validate       only the validation: every shared case (tests/Cases) of windows, conversions, unscale and optimizer steps
          linalg         only the matrix products: validate, time, FMA peak, numpy/torch peers, targets
          memory         only the memory scenario (CPU)
          mapped         only the mapped-file section: the scenario's frames as a .npy, gathered mapped vs in RAM, warm and cold
          moments        only Moments: validate on every device, time Update [4096, 1024] beside np.cov (and torch.cov), then StreamingPca
          attention      only Attention: validate, time the causal pair beside MatMul and the peers, windows against N, peak RSS, decode
          bdn            the CPU gather and copy under BenchmarkDotNet's default config
          memory-child   one lazy epoch, printing JSON (run by the memory scenario; --mapped FILE: frames from a .npy through a memory map)
          --quick        few reps, for smoke runs (results go to a .tmp file)
          --device SPECS only these devices (comma-separated): cpu, opencl[:i], cuda[:i], ilgpu:cpu, ilgpu:cuda[:i];
                         without it every device but ilgpu:cpu (ILGPU's emulated GPU: it validates, its speed is no target)
          --only SECTIONS  'all' runs only these timed sections (comma-separated): Bandwidth, Precision, Unscale,
                         OptimizerSteps, Linalg, Moments, Attention, Memory, Mapped; for before/after runs of one kernel family
          --out PATH     where to write the markdown report
        """;

    private sealed record Options(string Command, bool Quick, string? DeviceSpec, string? OutPath, string[] Rest, string[]? Only = null)
    {
        /// <summary>Whether the timed section <paramref name="name"/> runs: every one unless <c>--only</c> named some.</summary>
        public bool Wants(string name) => Only is null || Only.Contains(name, StringComparer.OrdinalIgnoreCase);
    }

    private static int Main(string[] args)
    {
        // Figures are committed and compared across machines: one number format everywhere.
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Options options;
        try { options = Parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }
        return options.Command switch
        {
            "memory-child" => MemoryScenario.Child(options.Rest),
            "bdn" => BdnSuite.Run(options.Rest),
            _ => Run(options),
        };
    }

    private static Options Parse(string[] args)
    {
        string command = "all";
        bool quick = false;
        string? device = null, output = null;
        string[]? only = null;
        int i = 0;
        if (args.Length > 0 && !args[0].StartsWith('-')) command = args[i++];
        if (command is "bdn" or "memory-child") return new Options(command, false, null, null, args[i..]);
        if (command is not ("all" or "validate" or "linalg" or "moments" or "attention" or "memory" or "mapped")) throw new ArgumentException($"unknown command '{command}'");
        for (; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick": quick = true; break;
                case "--device" when i + 1 < args.Length: device = args[++i]; break;
                case "--out" when i + 1 < args.Length: output = args[++i]; break;
                case "--only" when i + 1 < args.Length: only = args[++i].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries); break;
                default: throw new ArgumentException($"unknown or incomplete option '{args[i]}'");
            }
        }
        return new Options(command, quick, device, output, [], only);
    }

    private static int Run(Options options)
    {
        RunPlan plan = options.Quick ? RunPlan.Quick : RunPlan.Full;
        IReadOnlyList<Device> devices;
        // ILGPU's emulated CPU runs each group thread as an OS thread: it checks kernels, it does not time them. It runs
        // here only when asked for by name.
        try
        {
            devices = options.DeviceSpec is null
                ? [.. Device.Available.Where(d => d.Spec != "ilgpu:cpu")]
                : [.. options.DeviceSpec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(Device.Get)];
        }
        catch (Exception e) when (e is ArgumentException or NativeTensorException)
        {
            Console.Error.WriteLine($"--device {options.DeviceSpec}: {e.Message}");
            return 2;
        }
        var report = new Report();
        report.Header($"{(options.Quick ? "quick" : "full")}: {plan.Reps} timed reps after >= {plan.WarmupReps} warm-up runs and {plan.WarmupMilliseconds} ms, command '{options.Command}'");
        report.Line($"devices : {string.Join(", ", devices.Select(d => d.ToString()))}");
        foreach (DeviceKind kind in new[] { DeviceKind.OpenCl, DeviceKind.Cuda, DeviceKind.Ilgpu })
            if (Device.UnavailableReason(kind) is { } why) report.Line($"          no {kind} device: {why}");

        bool failed = false;
        var rows = new List<Row>();
        var conversions = new List<ConversionRow>();
        var unscales = new List<ConversionRow>();
        var steps = new List<ConversionRow>();
        var moments = new List<MomentsRow>();
        var linalg = new List<LinalgRow>();
        MemoryResult? memory = null;
        MappedResult? mapped = null;
        if (options.Command is "all" or "validate")
        {
            report.Section("Validation");
            List<Device> passed = ValidatedTiming.Validate(devices, report, PerfCases.Windows, out failed);
            if (options.Command == "validate")
            {
                // The other families' shared cases too; "all" runs each in its own section, just before timing it.
                foreach ((string title, IOpCase[] cases) in PerfCases.Timed)
                {
                    report.Section(title);
                    ValidatedTiming.Validate(devices, report, cases, out bool familyFailed);
                    failed |= familyFailed;
                }
            }
            if (options.Command == "all")
            {
                if (options.Wants("Bandwidth")) rows = TimeGathers(passed, plan, report);
                if (options.Wants("Precision"))
                {
                    (conversions, bool conversionFailed) = Precision.Run(passed, plan, report);
                    failed |= conversionFailed;
                }
                if (options.Wants("Unscale"))
                {
                    (unscales, bool unscaleFailed) = Unscale.Run(passed, plan, report);
                    failed |= unscaleFailed;
                }
                if (options.Wants("OptimizerSteps"))
                {
                    (steps, bool stepFailed) = OptimizerSteps.Run(passed, plan, report);
                    failed |= stepFailed;
                }
                if (options.Wants("Linalg"))
                {
                    (linalg, bool linalgFailed) = Linalg.Run(passed, plan, report);
                    failed |= linalgFailed;
                }
                if (options.Wants("Moments"))
                {
                    (moments, bool momentsFailed) = Moments.Run(passed, plan, report, options.Quick);
                    failed |= momentsFailed | Pca.Run(passed, plan, report, options.Quick);
                }
                if (options.Wants("Attention"))
                {
                    (_, bool attentionFailed) = Attention.Run(passed, plan, report, options.Quick);
                    failed |= attentionFailed;
                }
            }
        }
        if (options.Command == "linalg") (linalg, failed) = Linalg.Run(devices, plan, report);
        if (options.Command == "moments") (moments, failed) = Moments.Run(devices, plan, report, options.Quick);
        if (options.Command == "moments") failed |= Pca.Run(devices, plan, report, options.Quick);
        if (options.Command == "attention") (_, failed) = Attention.Run(devices, plan, report, options.Quick);
        if (options.Command is "memory" || (options.Command == "all" && options.Wants("Memory")))
        {
            report.Section("Memory scenario: sequence embedding, lazy vs eager windows (cpu)");
            if (!devices.Any(d => d.Kind == DeviceKind.Cpu))
                report.Line($"skipped: it runs on the cpu, and --device {options.DeviceSpec} leaves the cpu out");
            else
            {
                try { memory = MemoryScenario.Run(report, options.Quick); }
                catch (InvalidOperationException e)
                {
                    report.Line($"memory scenario: FAIL {e.Message}");
                    failed = true;
                }
            }
        }
        if (options.Command is "mapped" || (options.Command == "all" && options.Wants("Mapped")))
        {
            report.Section("Mapped files: the scenario's frames as a .npy, gathered through a memory map vs from RAM (cpu)");
            if (!devices.Any(d => d.Kind == DeviceKind.Cpu))
                report.Line($"skipped: it runs on the cpu, and --device {options.DeviceSpec} leaves the cpu out");
            else
            {
                try { mapped = MappedFiles.Run(report, options.Quick); }
                catch (InvalidOperationException e)
                {
                    report.Line($"mapped files: FAIL {e.Message}");
                    failed = true;
                }
            }
        }
        if (memory is not null || mapped is not null)
        {
            report.Section("Memory estimates vs measured (MemoryEstimator, memory scenario)");
            MemoryEstimates.Print(report, memory, mapped);
        }
        if (options.Command is "all" or "linalg") IlgpuVsCuda.Print(rows, [.. conversions, .. unscales, .. steps], linalg, report);
        if (options.Command is "all" or "linalg" or "moments" or "mapped")
        {
            report.Section("Targets");
            Targets.Print(rows, memory, report);
            Targets.PrintConversions(conversions, report);
            Targets.PrintUnscale(unscales, report);
            Targets.PrintOptimizerSteps(steps, report);
            Targets.PrintTorch([.. unscales, .. steps], report);
            Targets.PrintLinalg(linalg, report);
            Targets.PrintMoments(moments, report);
            Targets.PrintMapped(mapped, report);
        }

        string? path = options.OutPath ?? (options.Command == "all" ? DefaultResultsPath(devices, options.Quick) : null);
        if (path is not null)
        {
            report.Save(path);
            Console.WriteLine();
            Console.WriteLine($"report written to {Path.GetFullPath(path)}");
        }
        return failed ? 1 : 0;
    }

    /// <summary>Every case on every validated device, then the peers on the same batches, then the table.</summary>
    private static List<Row> TimeGathers(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        var cases = GatherCase.All.Select((c, i) => CaseStarts.Draw(c, plan.Sets, seed: 1000 + 100 * i)).ToList();
        report.Section("Bandwidth");
        report.Line("each rep of each op gathers a fresh set of random starts (seeded shuffles, no set reused); output tensor reused;");
        report.Line("ops are timed rep by rep in turn; the peers gather the host-starts gather's very batches;");
        report.Line("copy = the same bytes as one batch, from a random place in the frames, on the same device (the ceiling)");
        var rows = new List<Row>();
        foreach (Device device in devices)
        {
            Console.WriteLine($"timing {device.Spec} ...");
            MachineLoad load = MachineLoad.Start();
            rows.AddRange(Bandwidth.Run(device, cases, plan));
            string busy = load.Describe(out bool contaminated);
            if (busy.Length > 0)
                report.Line($"while {device.Spec} was timed: {busy}{(contaminated ? ": WARNING, other work shared the machine; figures are low and spread" : "")}");
        }
        if (devices.Any(d => d.Kind == DeviceKind.Cpu)) rows.AddRange(Peers.Numpy(cases, plan, report));
        if (devices.FirstOrDefault(d => d.Kind == DeviceKind.Cuda) is { } cuda) rows.AddRange(Peers.Torch(cuda, cases, plan, report));
        report.Line();
        Bandwidth.PrintTable(rows, report);
        Bandwidth.PrintRatios(rows, report);
        return rows;
    }

    /// <summary>perf/results/&lt;machine or backend&gt;-latest.md beside the project when run from the repository; ./results otherwise (a published copy).</summary>
    private static string DefaultResultsPath(IReadOnlyList<Device> devices, bool quick)
    {
        // One file per machine: named after its GPU where it has one, else after its CPU (PoCL's OpenCL runs there too).
        Device? gpu = devices.FirstOrDefault(d => d.Kind == DeviceKind.Cuda);
        string name = gpu is null
            ? $"cpu-{Slug(Report.CpuModel())}-{Environment.ProcessorCount}core"
            : $"cuda-{Slug(gpu.Name)}";
        string file = quick ? $"{name}-quick.md.tmp" : $"{name}-latest.md";
        for (DirectoryInfo? dir = new(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "perf", "NativeTensor.Perf.csproj")))
                return Path.Combine(dir.FullName, "perf", "results", file);
        return Path.Combine("results", file);
    }

    private static string Slug(string text) => NonWord().Replace(text.Trim().ToLowerInvariant(), "-").Trim('-');

    [GeneratedRegex("[^a-z0-9]+")]
    private static partial Regex NonWord();
}
