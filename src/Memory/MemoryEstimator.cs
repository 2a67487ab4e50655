using System.Globalization;

namespace NativeTensor.Memory;

/// <summary>
/// What a piece of work will need in memory, before anything is allocated, with each term explained: window data sets
/// (eager or lazy), transformer training and inference (MemoryEstimator.Transformer.cs), and the decisions made from
/// them (<see cref="ChooseWindowMode(WindowMode, long, long, double)"/>, <c>RecommendedContext</c>).
/// </summary>
/// <remarks>Every product is checked: a count past 2^63 - 1 bytes is an <see cref="OverflowException"/> naming the term.</remarks>
public static partial class MemoryEstimator
{
    /// <summary>Bytes of every window materialised: <c>Windows.Count(frames, window, stride) * window * rowElements * dtype size</c>.</summary>
    /// <remarks>Not monotone in <paramref name="window"/>: with stride 1 it is (frames - window + 1) * window rows, largest at half the frames.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">frames, rowElements, window or stride &lt; 1, window &gt; frames, or dtype undefined.</exception>
    /// <exception cref="OverflowException">The bytes exceed 2^63 - 1.</exception>
    public static long EagerWindowBytes(long frames, long rowElements, DType dtype, int window, int stride) =>
        EagerWindowEstimate(frames, rowElements, dtype, window, stride).Total;

    /// <summary>The terms of <see cref="EagerWindowBytes"/>: one, the windows tensor [S, W, row].</summary>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="EagerWindowBytes"/>.</exception>
    /// <exception cref="OverflowException">As <see cref="EagerWindowBytes"/>.</exception>
    public static MemoryEstimate EagerWindowEstimate(long frames, long rowElements, DType dtype, int window, int stride)
    {
        int size = WindowArguments(frames, rowElements, dtype, window);
        AtLeast(stride, 1, nameof(stride));
        long windows = NativeTensor.Windows.Count(frames, window, stride);
        return new MemoryEstimate("eager windows", [
            Term("windows", $"{N(windows)} windows x {N(window)} rows x {N(rowElements)} x {size} B", windows, window, rowElements, size)]);
    }

    /// <summary>
    /// Bytes of the lazy path: the frames, plus <c>1 + prefetch</c> batches in flight (the one being consumed and those
    /// gathered ahead), each a [batch, window, row] output and its <c>batch</c> Int64 starts:
    /// <c>frames * row * s + (1 + prefetch) * batch * (window * row * s + 8)</c>, s the dtype size.
    /// </summary>
    /// <remarks>
    /// Independent of the stride: only the starts differ. More than eager when windows barely overlap (window 1, or
    /// stride = window): the frames are held either way; lazy wins by about <c>window / stride</c> times on large sets.
    /// </remarks>
    /// <param name="frames">Rows of the frames tensor.</param>
    /// <param name="rowElements">Elements per row.</param>
    /// <param name="dtype">The frames' dtype.</param>
    /// <param name="window">Rows per window.</param>
    /// <param name="batch">Windows per batch.</param>
    /// <param name="prefetch">Batches gathered ahead of the one being consumed.</param>
    /// <param name="outputType">The batches' dtype when the gather converts (<c>Windows.Gather(..., outputType)</c>, e.g. BFloat16 frames into Float32 batches); null for <paramref name="dtype"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">frames, rowElements, window or batch &lt; 1, prefetch &lt; 0, window &gt; frames, a dtype undefined, or outputType differs from dtype and either is not floating-point.</exception>
    /// <exception cref="OverflowException">The bytes exceed 2^63 - 1.</exception>
    public static long LazyWindowBytes(long frames, long rowElements, DType dtype, int window, int batch, int prefetch, DType? outputType = null) =>
        LazyWindowEstimate(frames, rowElements, dtype, window, batch, prefetch, outputType).Total;

    /// <summary>The terms of <see cref="LazyWindowBytes"/>: frames, batch outputs in flight, starts in flight.</summary>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="LazyWindowBytes"/>.</exception>
    /// <exception cref="OverflowException">As <see cref="LazyWindowBytes"/>.</exception>
    public static MemoryEstimate LazyWindowEstimate(long frames, long rowElements, DType dtype, int window, int batch, int prefetch, DType? outputType = null)
    {
        int size = WindowArguments(frames, rowElements, dtype, window);
        int batchSize = size;
        if (outputType is DType converted && converted != dtype)
        {
            _ = FloatSize(dtype, nameof(dtype));                  // the fused gather-convert runs between floating-point dtypes only
            batchSize = FloatSize(converted, nameof(outputType));
        }
        AtLeast(batch, 1, nameof(batch));
        AtLeast(prefetch, 0, nameof(prefetch));
        long inFlight = 1L + prefetch;
        return new MemoryEstimate("lazy windows", [
            Term("frames", $"{N(frames)} frames x {N(rowElements)} x {size} B", frames, rowElements, size),
            Term("batches in flight", $"(1 + {N(prefetch)} prefetch) x {N(batch)} windows x {N(window)} rows x {N(rowElements)} x {batchSize} B",
                inFlight, batch, window, rowElements, batchSize),
            Term("starts in flight", $"(1 + {N(prefetch)} prefetch) x {N(batch)} starts x 8 B", inFlight, batch, 8)]);
    }

    /// <summary>
    /// Resolves <paramref name="requested"/> against a budget. Auto: Lazy when <paramref name="eagerBytes"/> &gt;
    /// <c>floor(fraction * budgetBytes)</c>, else Eager. Eager and Lazy are honoured as asked: an explicit Eager that
    /// does not fit is still Eager (it is the path that proves the lazy one, and the caller may know better, e.g. with
    /// swap), but <see cref="WindowModeDecision.EagerFits"/> is false and the reason says by how much it misses.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">requested undefined, eagerBytes or budgetBytes &lt; 0, or fraction not in (0, 1].</exception>
    public static WindowModeDecision ChooseWindowMode(WindowMode requested, long eagerBytes, long budgetBytes, double fraction = 0.5)
    {
        if (!Enum.IsDefined(requested)) throw new ArgumentOutOfRangeException(nameof(requested), requested, "not a defined WindowMode");
        AtLeast(eagerBytes, 0, nameof(eagerBytes));
        AtLeast(budgetBytes, 0, nameof(budgetBytes));
        if (!(fraction > 0 && fraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, $"fraction = {fraction}: must be in (0, 1]");
        long threshold = (long)Math.Floor(fraction * budgetBytes);
        bool fits = eagerBytes <= threshold;
        string compare = $"eager windows take {MemoryEstimate.Bytes(eagerBytes)} ({N(eagerBytes)} B), " +
                         $"{(fits ? "within" : "more than")} {fraction.ToString(CultureInfo.InvariantCulture)} of the budget " +
                         $"{MemoryEstimate.Bytes(budgetBytes)} = {N(threshold)} B";
        (WindowMode mode, string reason) = requested switch
        {
            WindowMode.Auto => (fits ? WindowMode.Eager : WindowMode.Lazy, compare),
            WindowMode.Eager => (WindowMode.Eager, fits ? compare : $"requested; {compare}, so it may not fit"),
            _ => (WindowMode.Lazy, $"requested; {compare}"),
        };
        return new WindowModeDecision(requested, mode, eagerBytes, budgetBytes, fraction, threshold, reason);
    }

    /// <summary><see cref="ChooseWindowMode(WindowMode, long, long, double)"/> against <paramref name="budget"/>'s <see cref="MemoryBudget.AvailableBytes"/>.</summary>
    /// <exception cref="ArgumentNullException">budget is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As the byte-count overload.</exception>
    public static WindowModeDecision ChooseWindowMode(WindowMode requested, long eagerBytes, MemoryBudget budget, double fraction = 0.5)
    {
        ArgumentNullException.ThrowIfNull(budget);
        return ChooseWindowMode(requested, eagerBytes, budget.AvailableBytes, fraction);
    }

    private static int WindowArguments(long frames, long rowElements, DType dtype, int window)
    {
        AtLeast(frames, 1, nameof(frames));
        AtLeast(rowElements, 1, nameof(rowElements));
        AtLeast(window, 1, nameof(window));
        if (window > frames)
            throw new ArgumentOutOfRangeException(nameof(window), window, $"window = {window}: exceeds frames = {frames}, so no window fits");
        return dtype.SizeOf();
    }

    /// <summary>A term whose bytes are the checked product of <paramref name="factors"/>.</summary>
    /// <exception cref="OverflowException">The product exceeds 2^63 - 1; the message names the term and its formula.</exception>
    internal static MemoryTerm Term(string name, string formula, params ReadOnlySpan<long> factors) => new(name, Product(name, formula, factors), formula);

    internal static long Product(string name, string formula, params ReadOnlySpan<long> factors)
    {
        Int128 bytes = 1;
        foreach (long f in factors)
        {
            bytes *= f;
            if (bytes > long.MaxValue) throw new OverflowException($"{name} = {formula} exceeds 2^63 - 1 bytes");
        }
        return (long)bytes;
    }

    internal static void AtLeast(long value, long least, string name)
    {
        if (value < least) throw new ArgumentOutOfRangeException(name, value, $"{name} = {value}: must be at least {least}");
    }

    internal static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
