using NativeTensor.Runtime.Kernels;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Cuda;
using NativeTensor.Tests.Infrastructure;

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
/// Linalg.MatMul and Syrk on every device: first checked element by element against <see cref="LinalgReference"/>
/// within the tests' derived bound (<see cref="Tolerances.MatMulError"/>) on small shapes that cover every transpose
/// pair, dtype pairs and alpha/beta; then timed on Float32 squares and a tall X^T X, beside this machine's FMA peak and
/// beside NumPy (OpenBLAS, CPU) or PyTorch (cuBLAS, CUDA) on the same shapes.
/// </summary>
internal static class Linalg
{
    public const string MatMulOp = "matmul f32";
    public const string SyrkOp = "syrk f32";

    /// <summary>The timed shapes, m x k x n.</summary>
    public static readonly (string Op, int M, int K, int N)[] Shapes =
        [(MatMulOp, 1024, 1024, 1024), (MatMulOp, 4096, 1024, 1024), (SyrkOp, 4096, 1024, 1024)];

    public static (List<LinalgRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        report.Section("Linalg: Linalg.MatMul / Syrk");
        (List<LinalgRow> rows, bool failed) = ValidatedTiming.Run(devices, report, "linalg.matmul + syrk ",
            "(4 transpose pairs x 3 dtype pairs, k across a depth block, 3 syrks; every element within the derived bound)",
            Validate, device => Time(device, plan, report));
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

    private static string? Validate(Device device)
    {
        try
        {
            var random = new Random(41);
            (DType A, DType B)[] dtypes = [(DType.Float32, DType.Float32), (DType.BFloat16, DType.Float16), (DType.Float16, DType.BFloat16)];
            foreach (bool transposeA in new[] { false, true })
                foreach (bool transposeB in new[] { false, true })
                    foreach ((DType aType, DType bType) in dtypes)
                    {
                        int m = 33, n = 47, k = aType == DType.Float32 ? 29 : 300;
                        if (MatMul(device, random, m, n, k, transposeA, transposeB, aType, bType, aType == DType.Float32 ? 1 : -1.5f,
                            transposeA ? 0.5f : 0) is { } failure)
                            return $"matmul {(transposeA ? "A^T" : "A")} {aType} x {(transposeB ? "B^T" : "B")} {bType} [{m}, {n}, {k}]: {failure}";
                    }
            foreach ((int rows, int d, DType dtype, float beta) in new[] { (57, 31, DType.Float32, 0f), (300, 40, DType.BFloat16, 1f), (5, 70, DType.Float16, -2f) })
                if (Syrk(device, random, rows, d, dtype, beta) is { } failure)
                    return $"syrk [{rows}, {d}] {dtype}: {failure}";
            return null;
        }
        catch (Exception e) when (e is NotImplementedException or NativeTensorException)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }

    private static string? MatMul(Device device, Random random, int m, int n, int k, bool transposeA, bool transposeB, DType aType, DType bType, float alpha, float beta)
    {
        byte[] a = Values(random, aType, m * k), b = Values(random, bType, k * n);
        float[] old = [.. Enumerable.Range(0, m * n).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        using Tensor left = OnDevice(aType, transposeA ? [k, m] : [m, k], a, device);
        using Tensor right = OnDevice(bType, transposeB ? [n, k] : [k, n], b, device);
        using Tensor host = Tensor.FromArray(old, m, n);
        using Tensor c = host.To(device);
        NativeTensor.Linalg.MatMul(left, right, transposeA, transposeB, alpha, beta, c);
        LinalgReference.Result expected = LinalgReference.MatMul(LinalgReference.Values(a, aType), transposeA, LinalgReference.Values(b, bType),
            transposeB, m, n, k, alpha, beta, [.. old.Select(x => (double)x)]);
        return Compare(c.ToArray<float>(), expected, k, alpha, beta, old);
    }

    private static string? Syrk(Device device, Random random, int rows, int d, DType dtype, float beta)
    {
        byte[] a = Values(random, dtype, rows * d);
        float[] old = [.. Enumerable.Range(0, d * d).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        using Tensor x = OnDevice(dtype, [rows, d], a, device);
        using Tensor host = Tensor.FromArray(old, d, d);
        using Tensor c = host.To(device);
        NativeTensor.Linalg.Syrk(x, 0.75f, beta, c);
        float[] actual = c.ToArray<float>();
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++)
                if (BitConverter.SingleToUInt32Bits(actual[i * d + j]) != BitConverter.SingleToUInt32Bits(actual[j * d + i]))
                    return $"C[{i}, {j}] and C[{j}, {i}] differ";
        LinalgReference.Result expected = LinalgReference.Syrk(LinalgReference.Values(a, dtype), rows, d, 0.75, beta, [.. old.Select(v => (double)v)]);
        float[] used = [.. Enumerable.Range(0, d * d).Select(e => old[Math.Max(e / d, e % d) * d + Math.Min(e / d, e % d)])];
        return Compare(actual, expected, rows, 0.75f, beta, used);
    }

    private static string? Compare(float[] actual, LinalgReference.Result expected, int k, float alpha, float beta, float[] old)
    {
        for (int e = 0; e < actual.Length; e++)
        {
            double error = Math.Abs(actual[e] - expected.C[e]);
            double allowed = Tolerances.MatMulError(k, alpha, expected.AbsoluteProducts[e], beta, old[e]);
            if (!(error <= allowed)) return $"element {e} = {actual[e]:R}, reference {expected.C[e]:R}, |error| {error:E2} > bound {allowed:E2}";
        }
        return null;
    }

    /// <summary>Values in [-1, 1) as <paramref name="dtype"/> bits (rounded to it once, so the reference sees what the device sees).</summary>
    private static byte[] Values(Random random, DType dtype, int count)
    {
        int size = dtype.SizeOf();
        var bytes = new byte[count * size];
        for (int i = 0; i < count; i++)
        {
            uint single = BitConverter.SingleToUInt32Bits((float)(random.NextDouble() * 2 - 1));
            BitConverter.GetBytes(PrecisionReference.Convert(single, DType.Float32, dtype)).AsSpan(0, size).CopyTo(bytes.AsSpan(i * size));
        }
        return bytes;
    }

    private static Tensor OnDevice(DType dtype, long[] shape, byte[] bytes, Device device)
    {
        Tensor tensor = Tensor.Empty(dtype, shape, device);
        device.Backend.Write(tensor.Buffer, 0, bytes);
        return tensor;
    }

    /// <summary>The Float32 shapes on one device, rep by rep in turn (so load from elsewhere lands on all of them alike).</summary>
    private static List<LinalgRow> Time(Device device, RunPlan plan, Report report)
    {
        var random = new Random(5);
        Tensor Random(int rows, int columns)
        {
            using Tensor host = Tensor.FromArray([.. Enumerable.Range(0, rows * columns).Select(_ => (float)(random.NextDouble() * 2 - 1))], rows, columns);
            return host.To(device);
        }
        var tensors = new List<Tensor>();
        var bodies = new List<Action<int>>();
        foreach ((string op, int m, int k, int n) in Shapes)
        {
            Tensor a = Random(m, k), b = Random(k, n), c = Tensor.Empty(DType.Float32, op == SyrkOp ? [k, k] : [m, n], device);
            tensors.AddRange([a, b, c]);
            bodies.Add(op == SyrkOp ? _ => NativeTensor.Linalg.Syrk(a, c: c) : _ => NativeTensor.Linalg.MatMul(a, b, c: c));
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
            foreach (Tensor t in tensors) t.Dispose();
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
