using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NativeTensor.Memory;

namespace NativeTensor.Tests.Memory;

/// <summary>MemoryEstimator's window estimates and the WindowMode decision.</summary>
public sealed class MemoryEstimatorTests
{
    private static readonly DType[] AllTypes = Enum.GetValues<DType>();

    /// <summary>One window dataset and batching: frames of rows of a dtype, cut in windows at a stride, batched and prefetched.</summary>
    public sealed record WindowCase(long Frames, long Row, DType DType, int Window, int Stride, int Batch, int Prefetch);

    private static readonly Gen<WindowCase> Cases =
        from frames in Gen.OneOf(Gen.Choose(1, 300), Gen.Choose(300, 2_000_000))
        from window in Gen.Choose(1, Math.Min(frames, 600))
        from stride in Gen.OneOf(Gen.Constant(1), Gen.Choose(1, 64))
        from row in Gen.OneOf(Gen.Choose(1, 17), Gen.Choose(1, 4096))
        from dtype in Gen.Elements(AllTypes)
        from batch in Gen.Choose(1, 1024)
        from prefetch in Gen.Choose(0, 4)
        select new WindowCase(frames, row, dtype, window, stride, batch, prefetch);

    /// <summary>The generators of the properties below, by type: window cases, and growths of 1 to 1000.</summary>
    public static class Generators
    {
        public static Arbitrary<WindowCase> Windows() => Cases.ToArbitrary();
        public static Arbitrary<int> Growth() => Gen.Choose(1, 1000).ToArbitrary();
    }

    [Fact]
    public void The_sequence_embedding_scenario_is_13_GB_eager_and_under_half_a_GB_lazy()
    {
        // 380,000 frames of 287 Float32 features, windows of 30 at stride 1, batches of 256, one batch prefetched.
        long eager = MemoryEstimator.EagerWindowBytes(380_000, 287, DType.Float32, window: 30, stride: 1);
        long lazy = MemoryEstimator.LazyWindowBytes(380_000, 287, DType.Float32, window: 30, batch: 256, prefetch: 1);
        Assert.Equal(379_971L * 30 * 287 * 4, eager);                               // 13,086,201,240 B = 13.09 GB
        Assert.Equal(380_000L * 1148 + 2 * 256 * 30 * 1148 + 2 * 256 * 8, lazy);    // 453,877,376 B
        Assert.True(lazy < 500_000_000);
        // The older WindowMemory record counts the same frames and batch buffers (it leaves out the starts).
        var m = WindowMemory.For(380_000, 287 * 4, 30, 1, 256);
        Assert.Equal(m.EagerBytes, eager);
        Assert.Equal(m.LazyBytes(2) + 2 * 256 * 8, lazy);

        MemoryEstimate terms = MemoryEstimator.LazyWindowEstimate(380_000, 287, DType.Float32, 30, 256, 1);
        Assert.Equal(["frames", "batches in flight", "starts in flight"], terms.Terms.Select(t => t.Name));
        Assert.Equal("(1 + 1 prefetch) x 256 windows x 30 rows x 287 x 4 B", terms.Terms[1].Formula);
        Assert.Equal("379,971 windows x 30 rows x 287 x 4 B", MemoryEstimator.EagerWindowEstimate(380_000, 287, DType.Float32, 30, 1).Terms[0].Formula);
        Assert.Contains("453,877,376 B", terms.ToString());

        Assert.Equal(WindowMode.Lazy, MemoryEstimator.ChooseWindowMode(WindowMode.Auto, eager, 16L << 30).Mode);   // 13 GB > 8 GiB
        Assert.Equal(WindowMode.Eager, MemoryEstimator.ChooseWindowMode(WindowMode.Auto, eager, 32L << 30).Mode);  // 13 GB <= 16 GiB
    }

    [Fact]
    public void A_converting_gather_counts_frames_in_their_dtype_and_batches_in_the_output_dtype()
    {
        // BFloat16 frames gathered straight into Float32 batches (Windows.Gather(..., outputType: Float32)).
        MemoryEstimate e = MemoryEstimator.LazyWindowEstimate(380_000, 287, DType.BFloat16, 30, 256, 0, outputType: DType.Float32);
        Assert.Equal(380_000L * 287 * 2, e["frames"]);
        Assert.Equal(256L * 30 * 287 * 4, e["batches in flight"]);
        Assert.Equal(MemoryEstimator.LazyWindowBytes(380_000, 287, DType.BFloat16, 30, 256, 0),
            MemoryEstimator.LazyWindowBytes(380_000, 287, DType.BFloat16, 30, 256, 0, outputType: DType.BFloat16));
        var refused = Assert.Throws<ArgumentOutOfRangeException>(() => MemoryEstimator.LazyWindowBytes(100, 4, DType.Int32, 3, 2, 0, outputType: DType.Float32));
        Assert.Equal("dtype", refused.ParamName);
        refused = Assert.Throws<ArgumentOutOfRangeException>(() => MemoryEstimator.LazyWindowBytes(100, 4, DType.Float32, 3, 2, 0, outputType: DType.Int64));
        Assert.Equal("outputType", refused.ParamName);
    }

    [Property(Arbitrary = [typeof(Generators)], MaxTest = 500)]
    public void Eager_is_the_window_count_times_the_window_bytes(WindowCase c)
    {
        Int128 expected = (Int128)NativeTensor.Windows.Count(c.Frames, c.Window, c.Stride) * c.Window * c.Row * c.DType.SizeOf();
        Assert.Equal(expected, MemoryEstimator.EagerWindowBytes(c.Frames, c.Row, c.DType, c.Window, c.Stride));
        Int128 lazy = (Int128)c.Frames * c.Row * c.DType.SizeOf() + (Int128)(1 + c.Prefetch) * c.Batch * (c.Window * c.Row * c.DType.SizeOf() + 8);
        Assert.Equal(lazy, MemoryEstimator.LazyWindowBytes(c.Frames, c.Row, c.DType, c.Window, c.Batch, c.Prefetch));
    }

    [Property(Arbitrary = [typeof(Generators)], MaxTest = 500)]
    public void Both_grow_with_every_size_argument_and_eager_shrinks_with_the_stride(WindowCase c, int more)
    {
        long Eager(long frames, long row, DType t, int stride) => MemoryEstimator.EagerWindowBytes(frames, row, t, c.Window, stride);
        long Lazy(long frames, long row, DType t, int window, int batch, int prefetch) => MemoryEstimator.LazyWindowBytes(frames, row, t, window, batch, prefetch);
        long eager = Eager(c.Frames, c.Row, c.DType, c.Stride);
        Assert.True(Eager(c.Frames + more, c.Row, c.DType, c.Stride) >= eager);
        Assert.True(Eager(c.Frames, c.Row + more, c.DType, c.Stride) > eager || eager == 0);
        Assert.True(Eager(c.Frames, c.Row, DType.Int64, c.Stride) >= eager);
        Assert.True(Eager(c.Frames, c.Row, c.DType, c.Stride + more) <= eager);
        long lazy = Lazy(c.Frames, c.Row, c.DType, c.Window, c.Batch, c.Prefetch);
        Assert.True(Lazy(c.Frames + more, c.Row, c.DType, c.Window, c.Batch, c.Prefetch) > lazy);
        Assert.True(Lazy(c.Frames, c.Row + more, c.DType, c.Window, c.Batch, c.Prefetch) > lazy);
        Assert.True(Lazy(c.Frames, c.Row, DType.Int64, c.Window, c.Batch, c.Prefetch) >= lazy);
        Assert.True(Lazy(c.Frames + more, c.Row, c.DType, c.Window + more, c.Batch, c.Prefetch) > Lazy(c.Frames + more, c.Row, c.DType, c.Window, c.Batch, c.Prefetch));
        Assert.True(Lazy(c.Frames, c.Row, c.DType, c.Window, c.Batch + more, c.Prefetch) > lazy);
        Assert.True(Lazy(c.Frames, c.Row, c.DType, c.Window, c.Batch, c.Prefetch + more) > lazy);
    }

    /// <summary>
    /// With B = (1 + prefetch) batch windows in flight, R row elements of s bytes and C windows of W rows at stride 1,
    /// eager - lazy = s R ((W - 1)(C - 1) - B W) - 8 B. For W >= 2, W &lt;= 2 (W - 1) and 8 / (s R) &lt;= 4 &lt;= 4 (W - 1),
    /// so C - 1 >= 6 B makes it non-negative: lazy never costs more once the windows outnumber six times those in flight.
    /// A window of one row is the exception: eager is then just a copy of the frames and lazy always costs more.
    /// </summary>
    [Fact]
    public void Lazy_costs_no_more_than_eager_once_windows_overlap_and_outnumber_those_in_flight()
    {
        Prop.ForAll(Cases.Where(c => c.Window >= 2).ToArbitrary(), c =>
        {
            long inFlight = (1L + c.Prefetch) * c.Batch;
            long frames = c.Frames + 6 * inFlight + c.Window;   // enough frames for C - 1 >= 6 B at stride 1
            Assert.True(MemoryEstimator.LazyWindowBytes(frames, c.Row, c.DType, c.Window, c.Batch, c.Prefetch)
                        <= MemoryEstimator.EagerWindowBytes(frames, c.Row, c.DType, c.Window, 1));
            Assert.True(MemoryEstimator.LazyWindowBytes(c.Frames, c.Row, c.DType, 1, c.Batch, c.Prefetch)
                        > MemoryEstimator.EagerWindowBytes(c.Frames, c.Row, c.DType, 1, 1));
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(500));
    }

    [Fact]
    public void Auto_goes_lazy_exactly_past_the_fraction_and_explicit_modes_are_honoured()
    {
        const long budget = 1000;
        WindowModeDecision at = MemoryEstimator.ChooseWindowMode(WindowMode.Auto, 500, budget);
        Assert.Equal((WindowMode.Eager, 500L, true), (at.Mode, at.ThresholdBytes, at.EagerFits));
        WindowModeDecision past = MemoryEstimator.ChooseWindowMode(WindowMode.Auto, 501, budget);
        Assert.Equal((WindowMode.Lazy, false), (past.Mode, past.EagerFits));
        Assert.Contains("more than 0.5 of the budget", past.Reason);
        Assert.Equal(WindowMode.Eager, MemoryEstimator.ChooseWindowMode(WindowMode.Auto, 900, budget, fraction: 0.9).Mode);
        Assert.Equal(WindowMode.Lazy, MemoryEstimator.ChooseWindowMode(WindowMode.Auto, 901, budget, fraction: 0.9).Mode);

        WindowModeDecision forced = MemoryEstimator.ChooseWindowMode(WindowMode.Eager, 5000, budget);
        Assert.Equal((WindowMode.Eager, false), (forced.Mode, forced.EagerFits));
        Assert.Contains("may not fit", forced.Reason);
        Assert.Equal(WindowMode.Lazy, MemoryEstimator.ChooseWindowMode(WindowMode.Lazy, 1, budget).Mode);

        MemoryBudget host = MemoryBudget.Current();
        WindowModeDecision fromBudget = MemoryEstimator.ChooseWindowMode(WindowMode.Auto, 1, host);
        Assert.Equal(host.AvailableBytes, fromBudget.BudgetBytes);
    }

    [Fact]
    public void Bad_arguments_are_refused_with_the_argument_named()
    {
        void Refused(string name, Action call) =>
            Assert.Equal(name, Assert.Throws<ArgumentOutOfRangeException>(call).ParamName);
        Refused("frames", () => MemoryEstimator.EagerWindowBytes(0, 4, DType.Float32, 1, 1));
        Refused("frames", () => MemoryEstimator.LazyWindowBytes(-1, 4, DType.Float32, 1, 1, 0));
        Refused("rowElements", () => MemoryEstimator.EagerWindowBytes(10, 0, DType.Float32, 3, 1));
        Refused("window", () => MemoryEstimator.EagerWindowBytes(10, 4, DType.Float32, 0, 1));
        Refused("window", () => MemoryEstimator.LazyWindowBytes(10, 4, DType.Float32, 11, 1, 0));
        Refused("stride", () => MemoryEstimator.EagerWindowBytes(10, 4, DType.Float32, 3, 0));
        Refused("batch", () => MemoryEstimator.LazyWindowBytes(10, 4, DType.Float32, 3, 0, 0));
        Refused("prefetch", () => MemoryEstimator.LazyWindowBytes(10, 4, DType.Float32, 3, 1, -1));
        Refused("dtype", () => MemoryEstimator.EagerWindowBytes(10, 4, (DType)99, 3, 1));
        Assert.Contains("window = 11: exceeds frames = 10", Assert.Throws<ArgumentOutOfRangeException>(
            () => MemoryEstimator.EagerWindowBytes(10, 4, DType.Float32, 11, 1)).Message);
        Assert.Contains("windows =", Assert.Throws<OverflowException>(
            () => MemoryEstimator.EagerWindowBytes(long.MaxValue / 2, 1 << 20, DType.Float32, 30, 1)).Message);
        Assert.Contains("frames =", Assert.Throws<OverflowException>(
            () => MemoryEstimator.LazyWindowBytes(long.MaxValue / 2, 1 << 20, DType.Float32, 30, 1, 0)).Message);

        Refused("requested", () => MemoryEstimator.ChooseWindowMode((WindowMode)7, 1, 1));
        Refused("eagerBytes", () => MemoryEstimator.ChooseWindowMode(WindowMode.Auto, -1, 1));
        Refused("budgetBytes", () => MemoryEstimator.ChooseWindowMode(WindowMode.Auto, 1, -1));
        foreach (double f in new[] { 0, -0.5, 1.5, double.NaN, double.PositiveInfinity })
            Refused("fraction", () => MemoryEstimator.ChooseWindowMode(WindowMode.Auto, 1, 1, f));
    }

    [Fact]
    public void An_estimate_refuses_a_null_term_by_its_index()
    {
        MemoryTerm ok = new("weights", 8, "2 x 4 B");
        var e = Assert.Throws<ArgumentNullException>(() => new MemoryEstimate("t", [ok, null!, ok]));
        Assert.Equal("terms", e.ParamName);
        Assert.Contains("term 1 is null", e.Message);
        Assert.Equal(16, new MemoryEstimate("t", [ok, ok]).Total);
    }
}
