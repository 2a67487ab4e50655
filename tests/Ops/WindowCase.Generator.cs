using FsCheck;
using FsCheck.Fluent;

namespace NativeTensor.Cases;

/// <summary>The random windows problems of the parity suites: the shared <see cref="WindowCase"/>, drawn by FsCheck (which perf does not reference).</summary>
public sealed partial record WindowCase
{
    /// <summary>Row sizes that sit on and beside every vector width and unit size, plus the sequence-embedding 287.</summary>
    private static readonly long[] EdgeRows = [1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 287, 300];

    public static Gen<WindowCase> Generator { get; } =
        from dtype in Gen.Elements(Enum.GetValues<DType>())
        from rest in Gen.OneOf(
            Gen.Constant(Array.Empty<long>()),
            Gen.OneOf(Gen.Elements(EdgeRows), Gen.Choose(1, 300).Select(d => (long)d)).Select(d => new[] { d }),
            from a in Gen.Choose(1, 17) from b in Gen.Choose(1, 19) select new long[] { a, b },
            from a in Gen.Choose(1, 5) from b in Gen.Choose(1, 4) from d in Gen.Choose(1, 6) select new long[] { a, b, d },
            Gen.Constant(new long[] { 0 }))   // frames [N, 0]: windows of zero bytes
        from frames in Gen.OneOf(Gen.Choose(1, 64), Gen.Choose(1, 257))
        from window in Gen.OneOf(Gen.Choose(1, frames), Gen.Constant(frames), Gen.Constant(1))
        from stride in Gen.OneOf(Gen.Choose(1, 4), Gen.Choose(1, frames))
        from batch in Gen.OneOf(Gen.Choose(0, 3), Gen.Choose(1, 40))
        from starts in ValidStarts(frames, window, batch)
        from seed in Gen.Choose(0, int.MaxValue)
        select new WindowCase(dtype, [frames, .. rest], window, stride, starts, seed);

    /// <summary><paramref name="batch"/> window starts in [0, frames - window], the first and last valid start drawn often.</summary>
    public static Gen<long[]> ValidStarts(int frames, int window, int batch) =>
        Gen.OneOf(
                Gen.Choose(0, frames - window),
                Gen.Constant(frames - window),   // the last valid start
                Gen.Constant(0))
            .Select(s => (long)s).ArrayOf(batch);
}
