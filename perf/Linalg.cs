using NativeTensor.Cases;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Cuda;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Perf;

/// <summary>
/// One timed product. Shapes are m x k x n: C [m, n] = A [m, k] B [k, n]; for Syrk, X [m, k] and C = X^T X [k, k]
/// (n = k). Flops: 2mnk for MatMul; m k (k + 1) for Syrk, the multiply-adds of the lower triangle and the diagonal,
/// which is all a symmetric product needs (the usual BLAS count; a GEMM computing X^T X in full does 2 m k^2).
/// </summary>
internal sealed record LinalgRow(string Op, int M, int K, int N, string Backend, Timing Time, bool IsPeer = false)
{
    public double Flops => Op == Linalg.SyrkOp ? (double)M * K * (K + 1) : 2.0 * M * K * N;

    public double Gflops => Flops / (Time.MedianMs * 1e6);

    public string Shape => Op == Linalg.SyrkOp ? $"X {M}x{K}: X^T X" : $"{M}x{K}x{N}";
}

/// <summary>
/// Linalg.MatMul and Syrk on every device: first the shared <see cref="MatMulCase"/>s and <see cref="SyrkCase"/>s of
/// <see cref="PerfCases.Linalg"/> (element by element within the tests' derived bound, Tolerances.MatMulError, of
/// LinalgReference: every transpose pair, dtype pairs, alpha/beta, and the timed shapes); then those timed cases, Float32
/// squares and a tall X^T X, beside this machine's FMA peak and beside NumPy (OpenBLAS, CPU) or PyTorch (cuBLAS, CUDA).
/// </summary>
internal static class Linalg
{
    public const string MatMulOp = "matmul f32";
    public const string SyrkOp = "syrk f32";

    /// <summary>The timed shapes, m x k x n: <see cref="PerfCases.TimedLinalg"/> in this table's terms.</summary>
    public static (string Op, int M, int K, int N)[] Shapes { get; } =
    [
        .. PerfCases.TimedLinalg.Select(c => c switch
        {
            SyrkCase syrk => (SyrkOp, syrk.Rows, syrk.D, syrk.D),
            MatMulCase m => (MatMulOp, m.M, m.K, m.N),
            _ => throw new InvalidOperationException($"no linalg row for {c.Name}"),
        }),
    ];

    public static (List<LinalgRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        report.Section("Linalg: Linalg.MatMul / Syrk");
        (List<LinalgRow> rows, bool failed) = ValidatedTiming.Run(devices, report, PerfCases.Linalg, device => Time(device, plan, report));
        (double Gflops, string How)? peak = null;
        if (rows.Any(r => r.Backend == Device.Cpu.Spec))
        {
            peak = FmaPeak.Measure();
            report.Line($"cpu FMA peak (measured): {peak.Value.Gflops:F1} GFLOP/s, {peak.Value.How}");
            rows.AddRange(Peers.NumpyMatMul(plan, report));
        }
        foreach (Device cuda in devices.Where(d => d.Kind == DeviceKind.Cuda && rows.Any(r => r.Backend == d.Spec)))
        {
            PrintKernelResources(cuda, report);
            rows.AddRange(Peers.TorchMatMul(cuda, plan, report));
        }
        Print(rows, peak?.Gflops, report);
        return (rows, failed);
    }

    /// <summary>
    /// Registers, local memory and shared memory of every MatMul and Syrk kernel as the driver compiled them: under
    /// <c>__launch_bounds__(256)</c> a register budget past 255 per thread spills to local memory, which costs more than
    /// any tuning gains, so a nonzero local size is the first thing to read here.
    /// </summary>
    private static void PrintKernelResources(Device cuda, Report report)
    {
        var backend = (CudaBackend)cuda.Backend;
        var table = new List<string[]> { new[] { "kernel", "registers/thread", "local B/thread", "shared B/block", "max threads/block" } };
        foreach (DeviceKernel kernel in LinalgKernels.All)
        {
            KernelResources used = backend.KernelResources(kernel.Source, kernel.Entry);
            table.Add([kernel.Entry, $"{used.Registers}", $"{used.LocalBytesPerThread}", $"{used.SharedBytesPerBlock}", $"{used.MaxThreadsPerBlock}"]);
        }
        report.Line($"{cuda.Spec} kernel resources ({cuda.Name}, as compiled for sm_{backend.ComputeCapability}):");
        report.Table(table, [false, true, true, true, true]);
    }

    /// <summary>The Float32 shapes on one device, rep by rep in turn (so load from elsewhere lands on all of them alike).</summary>
    private static List<LinalgRow> Time(Device device, RunPlan plan, Report report)
    {
        var prepared = new List<PreparedCase>();
        var bodies = new List<Action<int>>();
        foreach (IOpCase timed in PerfCases.TimedLinalg)
        {
            PreparedCase run = timed.Prepare(device);
            prepared.Add(run);
            bodies.Add(_ => run.Run());
        }
        try
        {
            Console.WriteLine($"timing linalg on {device.Spec} ...");
            MachineLoad load = MachineLoad.Start();
            Timing[] timings = Timer.Interleaved(device.Backend, plan with { Reps = Math.Min(plan.Reps, 30) }, bodies);
            string busy = load.Describe(out bool contaminated);
            if (busy.Length > 0)
                report.Line($"while {device.Spec} was timed: {busy}{(contaminated ? ": WARNING, other work shared the machine; figures are low and spread" : "")}");
            return [.. Shapes.Select((s, i) => new LinalgRow(s.Op, s.M, s.K, s.N, device.Spec, timings[i]))];
        }
        finally
        {
            foreach (PreparedCase run in prepared) run.Dispose();
        }
    }

    /// <summary>The peer's row for the same op and shape, measured on <paramref name="row"/>'s device.</summary>
    public static LinalgRow? PeerOf(LinalgRow row, IReadOnlyList<LinalgRow> rows) =>
        rows.FirstOrDefault(p => p.IsPeer && p.Op == row.Op && p.M == row.M && p.K == row.K && p.N == row.N && p.Backend.StartsWith(row.Backend + " ", StringComparison.Ordinal));

    private static void Print(IReadOnlyList<LinalgRow> rows, double? peak, Report report)
    {
        var cells = new List<string[]> { new[] { "op", "shape (m x k x n)", "backend", "median ms (min–max)", "GFLOP/s", "% of FMA peak", "vs peer" } };
        foreach (LinalgRow row in rows)
        {
            LinalgRow? peer = row.IsPeer ? null : PeerOf(row, rows);
            bool onCpu = row.Backend.Split(' ')[0] == Device.Cpu.Spec;
            cells.Add(
            [
                row.IsPeer ? $"peer: {row.Op}" : row.Op, row.Shape, row.Backend,
                $"{row.Time.MedianMs:F2} ({row.Time.MinMs:F2}–{row.Time.MaxMs:F2})",
                $"{row.Gflops:F1}",
                onCpu && peak is { } p ? $"{100 * row.Gflops / p:F0}%" : "—",
                peer is null ? "—" : $"{row.Gflops / peer.Gflops:F2}x {peer.Backend.Split(' ')[1]}",
            ]);
        }
        report.Table(cells, [false, false, false, true, true, true, true]);
        report.Line("GFLOP/s = 2mnk / median time for matmul; m k (k + 1) for syrk (lower triangle and diagonal; X is m x k, C is k x k).");
        report.Line("% of FMA peak: against the register-only FMA loop on all cores above (cpu rows only).");
    }
}
