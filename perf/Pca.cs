using NativeTensor.Training;

namespace NativeTensor.Perf;

/// <summary>
/// <see cref="StreamingPca"/>: the top 16 pairs of a [1024, 1024] covariance (4096 rows with a power-law spectrum,
/// λ_j = 1 / j, along a dense rotation), time per call: the host double path as it was (the Gershgorin interval), the
/// host double path of the Moments overload (the semidefinite interval, <c>device: null</c>), the Moments overload with its bulk in Float32
/// on each device and the refinement in double, and the Float32-only <see cref="StreamingPca.TopK(Tensor, int)"/>. The
/// refined values must agree with the host double path to 1e-9 relative (the issue's target), else the section fails.
/// </summary>
internal static class Pca
{
    public const int Features = 1024, Rows = 4096, K = 16;

    public static bool Run(IReadOnlyList<Device> devices, RunPlan plan, Report report, bool quick)
    {
        report.Section($"StreamingPca: top {K} of a [{Features}, {Features}] covariance ({Rows} rows, power-law spectrum), time per call");
        // Calls take 0.1 to 2 s: a short plan, one warm-up call (JIT, kernel builds).
        RunPlan few = plan with { WarmupReps = 1, WarmupMilliseconds = 0, Reps = quick ? 3 : 7 };
        using Tensor rows = Data();
        var host = new NativeTensor.Moments(Features, device: Device.Cpu);
        host.Update(rows);
        double[,] covariance = host.Covariance();
        (double[] exact, _) = StreamingPca.TopK(host, 0, K, device: null);
        var cells = new List<string[]> { new[] { "path", "where", "median ms (min–max)", "max rel. value error" } };
        bool failed = false;
        void Row(string path, string where, Func<double[]> call, double? limit)
        {
            double[] values = call();
            double error = values.Select((v, i) => Math.Abs(v - exact[i]) / Math.Abs(exact[i])).Max();
            Timing t = Timer.Interleaved(Device.Cpu.Backend, few, [_ => call()])[0];
            bool bad = limit is { } l && !(error <= l);
            failed |= bad;
            cells.Add([path, where, $"{t.MedianMs:F0} ({t.MinMs:F0}–{t.MaxMs:F0})", $"{error:E1}{(bad ? " FAIL" : "")}"]);
            Console.WriteLine($"timed pca {path} on {where}");
        }
        Row("host f64, TopK(double[,]), Gershgorin interval (the path before)", "host", () => StreamingPca.TopK(covariance, K).Values, 1e-9);
        Row("host f64, semidefinite interval", "host", () => StreamingPca.TopK(host, 0, K, device: null).Values, 1e-9);
        foreach (Device device in devices)
        {
            var state = new NativeTensor.Moments(Features, device: device);
            using (Tensor onDevice = rows.To(device)) state.Update(onDevice);
            Row("device f32 + host f64 refinement", device.Spec, () => StreamingPca.TopK(state, 0, K).Values, 1e-9);
            float[] single = [.. covariance.Cast<double>().Select(v => (float)v)];
            using Tensor hostMatrix = Tensor.FromArray(single, Features, Features);
            using Tensor matrix = hostMatrix.To(device);
            Row("device f32 only, TopK(Tensor)", device.Spec, () => StreamingPca.TopK(matrix, K).Values, null);
        }
        report.Table(cells, [false, false, true, true]);
        report.Line("value error: max over the 16 values of |λ - λ_host| / λ_host, λ_host from the host f64 path (semidefinite interval);");
        report.Line("the refined paths must be within 1e-9. The Float32-only path's own bound is derived in its XML docs.");
        return failed;
    }

    /// <summary>Rows z diag(sqrt λ) H, z standard normal, H the product of two Householder reflections (a dense rotation), seeded.</summary>
    private static Tensor Data()
    {
        var random = new Random(7);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var z = new float[Rows * Features];
        for (int i = 0; i < Rows; i++)
            for (int j = 0; j < Features; j++) z[i * Features + j] = (float)(Normal() / Math.Sqrt(j + 1));
        double[] v = [.. Enumerable.Range(0, Features).Select(_ => Normal())], w = [.. Enumerable.Range(0, Features).Select(_ => Normal())];
        double vv = v.Sum(x => x * x), ww = w.Sum(x => x * x), vw = v.Zip(w, (x, y) => x * y).Sum();
        var h = new float[Features * Features];
        for (int i = 0; i < Features; i++)
            for (int j = 0; j < Features; j++)
                h[i * Features + j] = (float)((i == j ? 1 : 0) - 2 * v[i] * v[j] / vv - 2 * w[i] * w[j] / ww + 4 * v[i] * vw * w[j] / (vv * ww));
        using Tensor zs = Tensor.FromArray(z, Rows, Features), hs = Tensor.FromArray(h, Features, Features);
        return NativeTensor.Linalg.MatMul(zs, hs);
    }
}
