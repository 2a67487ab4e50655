using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using NativeTensor.Cpu;

namespace NativeTensor.Perf;

/// <summary>
/// This machine's measured Float32 flop ceiling: every core runs independent chains of fused multiply-adds on
/// registers only (no loads, no stores), started together behind a barrier, with the widest vector the process runs.
/// Twelve chains per core cover the FMA latency times the FMA ports of any x86 core there is (Zen 4: latency 4, one
/// 512-bit FMA per cycle through its two 256-bit pipes), so the loop is limited by FMA throughput and clock alone.
/// This is the ceiling a GEMM's "% of peak" is measured against: the same clocks under the same all-core load.
/// </summary>
internal static class FmaPeak
{
    private const int Chains = 12;
    private const int Rounds = 5;
    private const long Iterations = 20_000_000;

    /// <summary>The best of a few rounds, in GFLOP/s (2 flops per lane per FMA), and a line saying how it was measured.</summary>
    public static (double Gflops, string How) Measure()
    {
        SimdWidth width = SimdWidths.Best;
        bool fused = width == SimdWidth.V512 || Fma.IsSupported;
        int lanes = width == SimdWidth.Scalar ? 1 : (int)width / sizeof(float);
        int cores = Environment.ProcessorCount;
        double best = 0;
        for (int round = 0; round < Rounds; round++)
        {
            using var start = new Barrier(cores + 1);
            var threads = Enumerable.Range(0, cores).Select(_ => new Thread(() =>
            {
                start.SignalAndWait();
                Sink(Run(width, Iterations));
            })).ToList();
            threads.ForEach(t => t.Start());
            start.SignalAndWait();
            long began = Stopwatch.GetTimestamp();
            threads.ForEach(t => t.Join());
            double seconds = Stopwatch.GetElapsedTime(began).TotalSeconds;
            best = Math.Max(best, (double)cores * Iterations * Chains * lanes * 2 / seconds / 1e9);
        }
        string how = $"{cores} cores x {Chains} independent {width.Describe()} {(fused ? "FMA" : "multiply-add")} chains in registers, best of {Rounds}";
        return (best, how);
    }

    private static float Run(SimdWidth width, long iterations) => width switch
    {
        SimdWidth.V512 => Chains512(iterations),
        SimdWidth.V256 => Chains256(iterations),
        SimdWidth.V128 => Chains128(iterations),
        _ => ChainsScalar(iterations),
    };

    private static float _sink;

    /// <summary>Keeps the chains' results alive so the JIT cannot drop the loop.</summary>
    private static void Sink(float value) => _sink += value * 0;

    // Each chain is x = x * m + a with m just below 1: it settles at a / (1 - m) and never overflows or goes subnormal.
    // AggressiveOptimization compiles the loop fully optimised at once: tier-0 and on-stack-replacement code would
    // keep the chains on the stack.

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float Chains512(long iterations)
    {
        Vector512<float> m = Vector512.Create(0.9999f), a = Vector512.Create(1e-4f);
        Vector512<float> x0 = a, x1 = a, x2 = a, x3 = a, x4 = a, x5 = a, x6 = a, x7 = a, x8 = a, x9 = a, x10 = a, x11 = a;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector512.FusedMultiplyAdd(x0, m, a); x1 = Vector512.FusedMultiplyAdd(x1, m, a);
            x2 = Vector512.FusedMultiplyAdd(x2, m, a); x3 = Vector512.FusedMultiplyAdd(x3, m, a);
            x4 = Vector512.FusedMultiplyAdd(x4, m, a); x5 = Vector512.FusedMultiplyAdd(x5, m, a);
            x6 = Vector512.FusedMultiplyAdd(x6, m, a); x7 = Vector512.FusedMultiplyAdd(x7, m, a);
            x8 = Vector512.FusedMultiplyAdd(x8, m, a); x9 = Vector512.FusedMultiplyAdd(x9, m, a);
            x10 = Vector512.FusedMultiplyAdd(x10, m, a); x11 = Vector512.FusedMultiplyAdd(x11, m, a);
        }
        return Vector512.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float Chains256(long iterations)
    {
        Vector256<float> m = Vector256.Create(0.9999f), a = Vector256.Create(1e-4f);
        Vector256<float> x0 = a, x1 = a, x2 = a, x3 = a, x4 = a, x5 = a, x6 = a, x7 = a, x8 = a, x9 = a, x10 = a, x11 = a;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector256.MultiplyAddEstimate(x0, m, a); x1 = Vector256.MultiplyAddEstimate(x1, m, a);
            x2 = Vector256.MultiplyAddEstimate(x2, m, a); x3 = Vector256.MultiplyAddEstimate(x3, m, a);
            x4 = Vector256.MultiplyAddEstimate(x4, m, a); x5 = Vector256.MultiplyAddEstimate(x5, m, a);
            x6 = Vector256.MultiplyAddEstimate(x6, m, a); x7 = Vector256.MultiplyAddEstimate(x7, m, a);
            x8 = Vector256.MultiplyAddEstimate(x8, m, a); x9 = Vector256.MultiplyAddEstimate(x9, m, a);
            x10 = Vector256.MultiplyAddEstimate(x10, m, a); x11 = Vector256.MultiplyAddEstimate(x11, m, a);
        }
        return Vector256.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float Chains128(long iterations)
    {
        Vector128<float> m = Vector128.Create(0.9999f), a = Vector128.Create(1e-4f);
        Vector128<float> x0 = a, x1 = a, x2 = a, x3 = a, x4 = a, x5 = a, x6 = a, x7 = a, x8 = a, x9 = a, x10 = a, x11 = a;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector128.MultiplyAddEstimate(x0, m, a); x1 = Vector128.MultiplyAddEstimate(x1, m, a);
            x2 = Vector128.MultiplyAddEstimate(x2, m, a); x3 = Vector128.MultiplyAddEstimate(x3, m, a);
            x4 = Vector128.MultiplyAddEstimate(x4, m, a); x5 = Vector128.MultiplyAddEstimate(x5, m, a);
            x6 = Vector128.MultiplyAddEstimate(x6, m, a); x7 = Vector128.MultiplyAddEstimate(x7, m, a);
            x8 = Vector128.MultiplyAddEstimate(x8, m, a); x9 = Vector128.MultiplyAddEstimate(x9, m, a);
            x10 = Vector128.MultiplyAddEstimate(x10, m, a); x11 = Vector128.MultiplyAddEstimate(x11, m, a);
        }
        return Vector128.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float ChainsScalar(long iterations)
    {
        float m = 0.9999f, a = 1e-4f;
        float x0 = a, x1 = a, x2 = a, x3 = a, x4 = a, x5 = a, x6 = a, x7 = a, x8 = a, x9 = a, x10 = a, x11 = a;
        for (long i = 0; i < iterations; i++)
        {
            x0 = x0 * m + a; x1 = x1 * m + a; x2 = x2 * m + a; x3 = x3 * m + a; x4 = x4 * m + a; x5 = x5 * m + a;
            x6 = x6 * m + a; x7 = x7 * m + a; x8 = x8 * m + a; x9 = x9 * m + a; x10 = x10 * m + a; x11 = x11 * m + a;
        }
        return x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11;
    }
}
