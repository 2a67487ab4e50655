using System.Diagnostics;

namespace NativeTensor.Memory;

/// <summary>
/// The peak resident set of a block of work, from <see cref="MemoryBudget.Measure"/> to <see cref="Dispose"/>.
/// Properties read before <see cref="Dispose"/> report the block so far; after it, they are fixed.
/// </summary>
/// <remarks>
/// <para>How it is exact: on Linux the scope resets the kernel's high-water mark (writing <c>5</c> to
/// <c>/proc/self/clear_refs</c>, Linux 4.0+), so VmHWM at the end is the highest resident set since the start, however
/// briefly it lasted, with no sampling. The kernel keeps resident counts per CPU and folds them in batches, so the
/// figures can be off by a few hundred KiB; the work of the block includes whatever the runtime does meanwhile (JIT,
/// GC) in any thread of the process.</para>
/// <para>When the reset is refused (an older kernel, a locked-down /proc) the peak is exact only if VmHWM rose during
/// the block; otherwise the earlier, larger peak hides it, the delta is an upper bound and <see cref="PeakIsExact"/>
/// is false. Other systems: the peak working set, which cannot be reset; always an upper bound.</para>
/// <para>What it changes: the kernel's VmHWM for this process now starts at the scope's beginning. Within this library
/// nothing is lost: the value read just before each reset is kept, so <see cref="MemoryBudget.PeakRssBytes"/> and
/// <see cref="ProcessMemory.PeakResidentBytes"/> still report the lifetime peak, and a scope open at the time of a
/// reset (an outer scope, or one on another thread) takes that value into its own peak: nested and overlapping scopes
/// each report the peak of their own interval. A tool outside the process reading /proc/&lt;pid&gt;/status sees the
/// reset mark.</para>
/// <para>One gap: VmHWM is read, then the reset is written, and the kernel offers no way to do both at once. A higher
/// peak that another thread reaches between the two (and leaves before the reset) is erased unread, so it is missing
/// from <see cref="MemoryBudget.PeakRssBytes"/>, <see cref="ProcessMemory.PeakResidentBytes"/> and the peaks of the
/// scopes open at the time; "exact" holds for the scope being opened, and for the others when no other thread
/// allocates in that window of a few microseconds.</para>
/// <para>A scope that is never disposed is held weakly and forgotten once collected; dispose it to fix its figures.</para>
/// </remarks>
public sealed class MemoryMeasurement : IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _reset;
    private long _peakAtResets;       // the highest VmHWM read when a later scope reset the mark while this one was open
    private long _startPeak;
    private long? _endRss, _endPeak;

    internal MemoryMeasurement()
    {
        (_reset, StartRssBytes, _startPeak) = PeakTracker.Open(this);
    }

    /// <summary>The resident set when the scope began.</summary>
    public long StartRssBytes { get; }

    /// <summary>The resident set at <see cref="Dispose"/> (or now, before it).</summary>
    public long EndRssBytes => _endRss ?? PeakTracker.Sample().Rss;

    /// <summary>The highest resident set during the scope (an upper bound when <see cref="PeakIsExact"/> is false).</summary>
    public long PeakRssBytes => _endPeak ?? PeakOf(PeakTracker.Sample());

    /// <summary><c>max(0, PeakRssBytes - StartRssBytes)</c>: how far the block raised the resident set above where it began.</summary>
    public long PeakRssDeltaBytes => Math.Max(0, PeakRssBytes - StartRssBytes);

    /// <summary>How long the scope has been (or was) open.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>
    /// True when <see cref="PeakRssBytes"/> is the block's own peak: the high-water mark was reset at the start, or it
    /// rose during the block. False when it may be an earlier, larger peak (an upper bound).
    /// </summary>
    public bool PeakIsExact => _reset || PeakRssBytes > _startPeak;

    /// <summary>Fixes the figures and closes the scope; later calls do nothing.</summary>
    public void Dispose()
    {
        if (_endPeak is not null) return;
        (long rss, long peak) = PeakTracker.Close(this);
        _clock.Stop();
        _endRss = rss;
        _endPeak = PeakOf((rss, peak));
    }

    internal void NoteReset(long peakBeforeReset) => _peakAtResets = Math.Max(_peakAtResets, peakBeforeReset);

    private long PeakOf((long Rss, long Peak) now) => Math.Max(Math.Max(now.Rss, now.Peak), _peakAtResets);
}
