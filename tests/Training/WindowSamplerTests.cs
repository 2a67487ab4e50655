using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Training;

namespace NativeTensor.Tests.Training;

public sealed class WindowSamplerTests
{
    [Fact]
    public void An_epoch_visits_every_window_start_exactly_once()
    {
        var cases = from frames in Gen.Choose(1, 500)
                    from window in Gen.Choose(1, Math.Min(40, frames))
                    from stride in Gen.Choose(1, 5)
                    select (frames, window, stride);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            (int frames, int window, int stride) = c;
            var sampler = new WindowSampler(frames, window, stride, seed: 7);
            long[] epoch = sampler.Epoch(0);
            long count = NativeTensor.Windows.Count(frames, window, stride);
            Assert.Equal(Enumerable.Range(0, (int)count).Select(s => (long)s * stride), epoch.Order());
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    [Fact]
    public void The_order_is_stable_per_seed_and_epoch_and_changes_between_epochs()
    {
        var a = new WindowSampler(1000, 30, seed: 42);
        var b = new WindowSampler(1000, 30, seed: 42);
        Assert.Equal(a.Epoch(3), b.Epoch(3));
        Assert.NotEqual(a.Epoch(0), a.Epoch(1));
        Assert.NotEqual(a.Epoch(0), new WindowSampler(1000, 30, seed: 43).Epoch(0));
        Assert.NotEqual(Enumerable.Range(0, 971).Select(i => (long)i), a.Epoch(0));
    }

    [Fact]
    public void Shards_are_disjoint_equal_in_length_and_cover_every_window()
    {
        Prop.ForAll(Gen.Choose(31, 400).ToArbitrary(), Gen.Choose(1, 7).ToArbitrary(), (frames, world) =>
        {
            long count = NativeTensor.Windows.Count(frames, 30);
            long[][] shards = Enumerable.Range(0, world).Select(r => new WindowSampler(frames, 30, 1, 9, r, world).Epoch(2)).ToArray();
            Assert.All(shards, s => Assert.Equal((count + world - 1) / world, s.LongLength));
            long[] all = shards.SelectMany(s => s).ToArray();
            Assert.Equal(Enumerable.Range(0, (int)count).Select(i => (long)i), all.Distinct().Order());
            Assert.Equal(all.Length - count, all.Length - all.Distinct().Count());   // only the padding repeats
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200));
    }

    [Fact]
    public void Batches_cut_the_epoch_in_order()
    {
        var sampler = new WindowSampler(100, 10, seed: 1);
        ReadOnlyMemory<long>[] batches = sampler.Batches(0, 16).ToArray();
        Assert.Equal(sampler.Epoch(0), batches.SelectMany(b => b.ToArray()));
        Assert.Equal(91 % 16, batches[^1].Length);
        Assert.All(sampler.Batches(0, 16, dropLast: true), b => Assert.Equal(16, b.Length));
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowSampler(10, 11));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowSampler(10, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowSampler(10, 3, stride: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowSampler(10, 3, rank: 2, worldSize: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowSampler(10, 3, worldSize: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowSampler(10, 3).Epoch(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WindowSampler(10, 3).Batches(0, 0).ToArray());
    }
}
