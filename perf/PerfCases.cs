using NativeTensor.Cases;

namespace NativeTensor.Perf;

/// <summary>
/// The shared cases (<c>tests/Cases</c>, the records the parity suites draw) that perf runs on every device before it
/// times anything: a fixed, representative set per family, the shapes perf times included, so a figure in the tables
/// is always of a case that was just checked against the reference.
/// </summary>
internal static class PerfCases
{
    /// <summary>Odd rows (287, 6-byte rows), a token stream, every dtype, a window of all frames, an empty batch.</summary>
    private static readonly (DType DType, long[] Shape, int Window, int Batch)[] SmallWindows =
    [
        (DType.Float32, [1000, 287], 30, 37),
        (DType.Float16, [3001, 3], 17, 64),
        (DType.Int32, [5000], 512, 9),
        (DType.BFloat16, [700, 4, 5], 11, 5),
        (DType.Int64, [300, 1], 300, 3),
        (DType.Float32, [100, 287], 30, 0),
    ];

    // Static initialisers run in textual order: what the case sets below are built from comes first.

    /// <summary>The six directions Conversions times.</summary>
    public static (DType From, DType To)[] Directions { get; } =
    [
        (DType.Float32, DType.Float16), (DType.Float32, DType.BFloat16), (DType.Float16, DType.Float32),
        (DType.BFloat16, DType.Float32), (DType.Float16, DType.BFloat16), (DType.BFloat16, DType.Float16),
    ];

    private static readonly DType[] Floats = [DType.Float32, DType.Float16, DType.BFloat16];

    /// <summary>
    /// Both gathers on the small set and on every timed shape; eager at strides 1 and 3 on the small set (a timed shape's
    /// eager would be 13 GB); the fused gather-convert in every direction on odd rows and on special values (validated,
    /// not yet timed).
    /// </summary>
    public static IOpCase[] Windows { get; } =
    [
        .. from op in new[] { WindowOp.GatherHostStarts, WindowOp.GatherDeviceStarts }
           from c in SmallWindows.Select((w, i) => WindowCase.Drawn(w.DType, w.Shape, w.Window, w.Batch, seed: i, op))
                     .Concat(GatherCase.All.Select(g => g.Shared(op)))
           select (IOpCase)c,
        .. from stride in new[] { 1, 3 }
           from c in SmallWindows.Select((w, i) => WindowCase.Drawn(w.DType, w.Shape, w.Window, w.Batch, seed: 10 + i, WindowOp.Eager, stride))
           select (IOpCase)c,
        .. from d in Directions
           from c in new[]
           {
               WindowCase.Drawn(d.From, [1000, 287], 30, 37, seed: 21, WindowOp.GatherHostStarts),
               WindowCase.Drawn(d.From, [3001, 3], 17, 64, seed: 22, WindowOp.GatherHostStarts),
           }
           select (IOpCase)new GatherConvertCase(d.From, d.To, c.FrameShape, c.Window, c.Starts, c.Seed),
        .. Directions.Select(d => (IOpCase)new GatherConvertCase(d.From, d.To, [40, 287], 30, [0, 10, 3, 9, 10], 0, SpecialFrames: true)),
    ];


    /// <summary>Elements per timed conversion and unscale: 64 MB of Float32, far beyond every cache.</summary>
    public const long ElementwiseElements = 16L << 20;

    /// <summary>The timed conversion of one direction: finite values of every shared magnitude, so no element takes a rare path.</summary>
    public static ConvertCase TimedConversion(DType from, DType to) => new(from, to, [ElementwiseElements], 7, ConvertInputs.Magnitudes);

    /// <summary>Per direction: a million random bit patterns, the special values in a matrix, and the timed shape.</summary>
    public static IOpCase[] Conversions { get; } =
    [
        .. from d in Directions
           from c in new[]
           {
               new ConvertCase(d.From, d.To, [1 << 20], 16),
               new ConvertCase(d.From, d.To, [13, 7], 0, ConvertInputs.SpecialValues),
               TimedConversion(d.From, d.To),
           }
           select (IOpCase)c,
    ];

    /// <summary>The gradient dtypes Unscale times.</summary>
    public static DType[] UnscaleTypes { get; } = [DType.Float32, DType.BFloat16];

    /// <summary>The timed unscale of one dtype: in place at 2^-16 and back, on finite values (exact at these magnitudes).</summary>
    public static UnscaleCase TimedUnscale(DType dtype) => new([new(dtype, (int)ElementwiseElements, GradientFill.Magnitudes)], MathF.ScaleB(1, -16), 7);

    /// <summary>
    /// Per dtype: a million random patterns at the default scale's reciprocal; a mixed list of odd lengths at a scale
    /// that rounds every product, with the special values; the timed shape. Then the read-only find over all three
    /// float dtypes with one NaN planted past the vector loop, and over finite values only.
    /// </summary>
    public static IOpCase[] Unscale { get; } =
    [
        .. from dtype in UnscaleTypes
           from c in new[]
           {
               new UnscaleCase([new(dtype, 1 << 20)], (float)(1 / 65536.0), 17),
               new UnscaleCase([new(dtype, 257, GradientFill.SpecialValues), new(dtype, 4099), new(dtype, 1)], (float)(1 / 3.0), 18),
               TimedUnscale(dtype),
           }
           select (IOpCase)c,
        .. from dtype in Floats
           from c in new[]
           {
               new UnscaleCase([new(dtype, 63, GradientFill.FiniteBits), new(dtype, 300_001, GradientFill.FiniteBits)], 1, 19,
                   Planted: (1, 300_000, dtype == DType.Float32 ? 0x7FC0_0000UL : dtype == DType.Float16 ? 0x7E00UL : 0x7FC0UL), FindOnly: true),
               new UnscaleCase([new(dtype, 63, GradientFill.FiniteBits), new(dtype, 300_001, GradientFill.FiniteBits)], 1, 20, FindOnly: true),
           }
           select (IOpCase)c,
    ];

    /// <summary>Elements per timed optimizer step: 64 MB of Float32 weights, 256 MB touched per AdamW step.</summary>
    public const int StepElements = 16 << 20;

    /// <summary>The three steps Optimizers times, as shared cases of <see cref="StepElements"/>; one step each when validated.</summary>
    public static StepCase[] TimedSteps { get; } =
    [
        new(new AdamWOptions(), null, DType.BFloat16, DType.BFloat16, StepElements, Steps: 1, LossScale: 1, Seed: 11),
        new(new AdamWOptions(), null, DType.Float32, null, StepElements, Steps: 1, LossScale: 1, Seed: 12),
        new(null, new SgdOptions(), DType.Float16, DType.Float16, StepElements, Steps: 1, LossScale: 1, Seed: 13),
    ];

    /// <summary>
    /// Both optimizers over every (gradient, working) dtype pair, three steps of 4099 elements (a vector tail on every
    /// width), held to the derived bound; the same cases' bits against the CPU's scalar kernel where the device's divide
    /// and sqrt round correctly; and the timed shapes.
    /// </summary>
    public static IOpCase[] OptimizerSteps { get; } = StepSet();

    /// <summary>The Float32 products Linalg times: two matmuls and a tall X^T X.</summary>
    public static IOpCase[] TimedLinalg { get; } =
    [
        new MatMulCase(1024, 1024, 1024, false, false, DType.Float32, DType.Float32, 1, 0, 5),
        new MatMulCase(4096, 1024, 1024, false, false, DType.Float32, DType.Float32, 1, 0, 6),
        new SyrkCase(4096, 1024, DType.Float32, 1, 0, 7),
    ];

    /// <summary>
    /// Every transpose pair with three dtype pairs (k across a depth block for the 16-bit ones, alpha and beta varied),
    /// three syrks over the dtypes with old C kept and scaled, and the timed shapes: all held to the derived bound.
    /// </summary>
    public static IOpCase[] Linalg { get; } =
    [
        .. from transposeA in new[] { false, true }
           from transposeB in new[] { false, true }
           from pair in new[] { (A: DType.Float32, B: DType.Float32), (A: DType.BFloat16, B: DType.Float16), (A: DType.Float16, B: DType.BFloat16) }
           select (IOpCase)new MatMulCase(33, 47, pair.A == DType.Float32 ? 29 : 300, transposeA, transposeB, pair.A, pair.B,
               pair.A == DType.Float32 ? 1 : -1.5f, transposeA ? 0.5f : 0, 41),
        new SyrkCase(57, 31, DType.Float32, 0.75f, 0, 41),
        new SyrkCase(300, 40, DType.BFloat16, 0.75f, 1, 42),
        new SyrkCase(5, 70, DType.Float16, 0.75f, -2, 43),
        .. TimedLinalg,
    ];

    /// <summary>
    /// Uneven batches dealt to two shards and merged: three groups of 17 Float32 features, 40 BFloat16 features around a
    /// large mean, a diagonal-only Float16 state read back from bytes. The timed [4096, 1024] batch is not among them:
    /// its reference and bound take minutes; the Moments section prints that batch's error against the reference instead.
    /// </summary>
    public static IOpCase[] Moments { get; } =
    [
        new MomentsCase(3, 17, DType.Float32, 300, Shards: 2, Rank2: false, RoundTrip: false, Diagonal: false, Mean: 100, Scale: 10, Seed: 300),
        new MomentsCase(1, 40, DType.BFloat16, 260, Shards: 2, Rank2: true, RoundTrip: false, Diagonal: false, Mean: 1000, Scale: 1, Seed: 260),
        new MomentsCase(2, 33, DType.Float16, 131, Shards: 3, Rank2: false, RoundTrip: true, Diagonal: true, Mean: -3.5, Scale: 1e-3, Seed: 131),
    ];

    /// <summary>
    /// Attention forward and backward over the dtypes, masks (causal, windows inside and past the sequence), grouped heads,
    /// N &lt; M, N = 1 and an odd head dimension, all held to the derived bound. The timed shapes are not among them: their
    /// double reference takes minutes; the tests hold the same code to the same bound on shapes across its tiles.
    /// </summary>
    public static IOpCase[] Attention { get; } =
    [
        .. from backward in new[] { false, true }
           from dtype in new[] { DType.Float32, DType.Float16, DType.BFloat16 }
           select (IOpCase)new AttentionCase(2, 4, 2, 70, 70, 64, true, 0, dtype, backward, 51),
        new AttentionCase(1, 8, 1, 33, 150, 40, true, 50, DType.BFloat16, false, 52),
        new AttentionCase(1, 8, 1, 33, 150, 40, true, 50, DType.Float32, true, 52),
        new AttentionCase(1, 2, 2, 1, 300, 128, false, 0, DType.Float16, false, 53),
        new AttentionCase(1, 3, 1, 90, 41, 7, true, 5, DType.Float32, true, 54),
    ];

    /// <summary>The families validated just before their timing sections, by section title: what <c>perf validate</c> runs after <see cref="Windows"/>.</summary>
    public static (string Title, IOpCase[] Cases)[] Timed =>
    [
        ("Conversions: NativeTensor.Precision.Convert", Conversions),
        ("Unscale: NativeTensor.Precision.UnscaleAndCheck", Unscale),
        ("Optimizer steps: NativeTensor.OptimizerSteps.AdamW / Sgd", OptimizerSteps),
        ("Linalg: Linalg.MatMul / Syrk", Linalg),
        ("Moments: Moments.Update and Merge", Moments),
        ("Attention: Attention.Forward / Backward", Attention),
    ];

    private static IOpCase[] StepSet()
    {
        var cases = new List<StepCase>();
        foreach (bool adamW in new[] { true, false })
            foreach (DType gradient in Floats)
                foreach (DType? working in new DType?[] { null, DType.Float16, DType.BFloat16 })
                    cases.Add(new StepCase(adamW ? new AdamWOptions { WeightDecay = 0.1 } : null,
                        adamW ? null : new SgdOptions { WeightDecay = 1e-3, Nesterov = gradient == DType.Float16 },
                        gradient, working, Length: 4099, Steps: 3, LossScale: 1024, Seed: 3));
        return [.. cases, .. cases.Select(c => new ScalarBitsCase(c)), .. TimedSteps];
    }
}

/// <summary>
/// A shared <see cref="StepCase"/> held to the bits of the CPU's scalar kernel (<see cref="StepCase.BitsDiffer"/>), on
/// devices whose divide and sqrt round correctly; elsewhere (PoCL's 2.5-ulp divide, 3-ulp sqrt) the derived bound the
/// plain case applies is the whole check, and this one passes.
/// </summary>
internal sealed record ScalarBitsCase(StepCase Case) : IOpCase
{
    private static readonly Device Scalar = new(new Runtime.Cpu.CpuBackend(Cpu.SimdWidth.Scalar), 0);

    public string Op => $"{Case.Op}, bits of the cpu scalar kernel";

    public string Name => Case.Name;

    public string Standard => "bit-exact vs the cpu scalar kernel where divide and sqrt round correctly";

    public long MovedBytes => Case.MovedBytes;

    public long Flops => Case.Flops;

    public string? Check(Device device) =>
        device.Backend is Runtime.OpenCl.OpenClBackend { RoundsDivideAndSqrtCorrectly: false } ? null : Case.BitsDiffer(Scalar, device);

    public PreparedCase Prepare(Device device) => Case.Prepare(device);
}
