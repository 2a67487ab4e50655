namespace NativeTensor.Memory;

/// <summary>How a window data set is fed: every window materialised up front, or each batch gathered when it is needed.</summary>
public enum WindowMode
{
    /// <summary>Materialise every window once (<see cref="NativeTensor.Windows.Eager"/>): no gather per batch, <see cref="MemoryEstimator.EagerWindowBytes"/> of memory.</summary>
    Eager,
    /// <summary>Gather each batch from the frames (<c>Windows.Gather</c>): <see cref="MemoryEstimator.LazyWindowBytes"/> of memory.</summary>
    Lazy,
    /// <summary>Decide from the budget: <see cref="Lazy"/> when eager would take more than a stated fraction of it (<see cref="MemoryEstimator.ChooseWindowMode(WindowMode, long, long, double)"/>).</summary>
    Auto,
}

/// <summary>A resolved <see cref="WindowMode"/> and why: the numbers the decision compared.</summary>
/// <param name="Requested">The mode asked for.</param>
/// <param name="Mode">The mode to use: <see cref="WindowMode.Eager"/> or <see cref="WindowMode.Lazy"/>, never Auto.</param>
/// <param name="EagerBytes">What the eager windows would take.</param>
/// <param name="BudgetBytes">The budget compared against (typically <see cref="MemoryBudget.AvailableBytes"/>).</param>
/// <param name="Fraction">The share of the budget eager windows may take.</param>
/// <param name="ThresholdBytes"><c>floor(Fraction * BudgetBytes)</c>.</param>
/// <param name="Reason">One sentence with the numbers, for a log.</param>
public sealed record WindowModeDecision(
    WindowMode Requested, WindowMode Mode, long EagerBytes, long BudgetBytes, double Fraction, long ThresholdBytes, string Reason)
{
    /// <summary>Whether eager windows fit under the threshold (<c>EagerBytes &lt;= ThresholdBytes</c>).</summary>
    public bool EagerFits => EagerBytes <= ThresholdBytes;

    /// <inheritdoc/>
    public override string ToString() => $"{Mode}: {Reason}";
}
