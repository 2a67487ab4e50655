#if NO_BDN
namespace NativeTensor.Perf;

/// <summary>The trimmed build has no BenchmarkDotNet (see the project file); <c>perf bdn</c> says where to run it.</summary>
internal static class BdnSuite
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("bdn: BenchmarkDotNet is left out of trimmed builds; run `dotnet run -c Release --project perf -- bdn` from the repository");
        return 2;
    }
}
#else
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;

namespace NativeTensor.Perf;

/// <summary><c>perf bdn</c>: the CPU gather and its copy ceiling under BenchmarkDotNet's default config, for its statistics.</summary>
internal static class BdnSuite
{
    public static int Run(string[] args)
    {
        BenchmarkRunner.Run<WindowsGatherBenchmarks>(config: null, args);
        return 0;
    }
}

/// <summary>
/// The embedding batch (256 windows of 30 frames of 287 float32 from 380,000 frames) on the CPU. Every call takes
/// the next of 64 random start sets (8.8 MB each, 564 MB in all, far past the caches), and its copy ceiling
/// the next random source offset. Each method's name is the call it makes.
/// </summary>
public class WindowsGatherBenchmarks
{
    private const int Sets = 64;
    private static readonly GatherCase Case = GatherCase.Embedding;

    private Tensor _frames = null!;
    private Tensor _output = null!;
    private StartSets _starts = null!;
    private Tensor[] _startTensors = [];
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _frames = Case.CreateFrames(Device.Cpu);
        _output = Tensor.Empty(Case.DType, Case.OutputShape, Device.Cpu);
        _starts = StartSets.Draw(Case, Sets, seed: 1000);
        _startTensors = _starts.Sets.Select(set => Tensor.FromArray(set)).ToArray();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (Tensor t in _startTensors) t.Dispose();
        _output.Dispose();
        _frames.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void BackendCopy() =>
        Device.Cpu.Backend.Copy(_frames.Buffer, _starts.CopyStarts[Next()] * Case.RowBytes, _output.Buffer, 0, Case.BatchBytes);

    [Benchmark]
    public void SpanCopyTo() =>
        Tensor.CpuBytes(_frames.Buffer, _starts.CopyStarts[Next()] * Case.RowBytes, (int)Case.BatchBytes)
            .CopyTo(Tensor.CpuBytes(_output.Buffer, 0, (int)Case.BatchBytes));

    [Benchmark]
    public Tensor WindowsGatherHostStarts() => Windows.Gather(_frames, _starts.Sets[Next()], Case.Window, _output);

    [Benchmark]
    public Tensor WindowsGatherDeviceStarts() => Windows.Gather(_frames, _startTensors[Next()], Case.Window, _output);

    private int Next() => _next = (_next + 1) % Sets;
}
#endif
