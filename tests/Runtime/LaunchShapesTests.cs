using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// The launch policies every kernel backend sizes its launches with (<see cref="LaunchShapes"/>), pinned on the
/// limits of an H100 (132 multiprocessors of 2048 threads) and of PoCL on two cores, so they hold without either device.
/// </summary>
public sealed class LaunchShapesTests
{
    private static readonly KernelLimits H100 = new(MaxGroupThreads: 1024, MinGroupThreads: 64, ResidentThreads: 132 * 2048);
    private static readonly KernelLimits PoCl = new(MaxGroupThreads: 4096, MinGroupThreads: 8, ResidentThreads: 2 * 4096);

    [Theory]
    [InlineData(1148L, 4)]
    [InlineData(1150L, 2)]
    [InlineData(7L, 1)]
    [InlineData(24L, 8)]
    [InlineData(4096L, 16)]
    public void NarrowestUnit_IsTheRowsLowestBit_CappedAt16(long rowBytes, int unit) =>
        Assert.Equal(unit, LaunchShapes.NarrowestUnit(rowBytes));

    [Fact]
    public void Windows_FillAnH100Wave_ForThePerfBatch()
    {
        const long Block = 30 * 1148;
        long units = Block / LaunchShapes.NarrowestUnit(1148);
        LaunchShape shape = LaunchShapes.Windows(H100, 256, units);
        long threads = shape.GroupThreads * shape.GroupsY;
        Assert.Equal(256, shape.GroupsX);
        Assert.True(256 * threads >= H100.ResidentThreads, $"{shape} leaves the grid short of one wave");
        Assert.InRange(units / threads, LaunchShapes.FewestUnitsPerThread, LaunchShapes.MostUnitsPerThread);
    }

    [Theory]
    [InlineData(16L, 16L, 1L)]                  // a single unit: one chunk, whatever the wave
    [InlineData(1L << 34, 16L, 1L)]             // one huge window: bounded by gridDim.y
    [InlineData(1L << 24, 16L, 1L << 20)]       // many windows: the wave is full without chunks
    [InlineData(34440L, 1148L, 1L << 30)]
    public void Windows_StayWithinTheLaunchLimits(long block, long rowBytes, long windows)
    {
        foreach (KernelLimits limits in new[] { H100, PoCl })
        {
            long units = block / LaunchShapes.NarrowestUnit(rowBytes);
            LaunchShape shape = LaunchShapes.Windows(limits, windows, units);
            Assert.InRange(shape.GroupsY, 1, LaunchShapes.MaxGroupsY);
            Assert.InRange(shape.GroupThreads, 1, LaunchShapes.PreferredGroupThreads);
            if (shape.GroupsY < LaunchShapes.MaxGroupsY)
                Assert.True(units <= shape.GroupsY * shape.GroupThreads * LaunchShapes.MostUnitsPerThread, $"{shape} leaves a thread over {LaunchShapes.MostUnitsPerThread} units");
        }
    }

    [Fact]
    public void Windows_GiveShortWindowsSmallGroups()
    {
        // 16384 windows of 84 bytes: 256 threads a group took 3-7 ms on PoCL, 8 took 0.2-0.4 ms.
        LaunchShape shape = LaunchShapes.Windows(PoCl, 16384, 84 / LaunchShapes.NarrowestUnit(84));
        Assert.Equal(8, shape.GroupThreads);
        Assert.Equal(64, LaunchShapes.Windows(H100, 16384, 21).GroupThreads);
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(2047L)]
    [InlineData(1L << 20)]
    [InlineData(1L << 40)]
    public void GridStride_GivesEachThreadItsShare_WithinFourWaves(long count)
    {
        foreach (KernelLimits limits in new[] { H100, PoCl })
        {
            LaunchShape shape = LaunchShapes.GridStride(limits, count);
            Assert.Equal(LaunchShapes.PreferredGroupThreads, shape.GroupThreads);
            Assert.Equal(1, shape.GroupsY);
            Assert.InRange(shape.GroupsX, 1, Math.Max(1, LaunchShapes.Waves * limits.ResidentThreads / shape.GroupThreads));
            if (shape.GroupsX > 1) Assert.True(count >= (shape.GroupsX - 1) * shape.GroupThreads * LaunchShapes.ElementsPerThread);
        }
    }

    [Fact]
    public void A32BitDevice_KeepsTheGlobalSizeBelow2To32()
    {
        var narrow = new KernelLimits(1024, 32, 1L << 20, AddressBits: 32);
        LaunchShape shape = LaunchShapes.Windows(narrow, int.MaxValue, 1L << 20);
        Assert.True(shape.GroupsX * shape.GroupThreads <= uint.MaxValue, $"{shape}");
    }

    [Fact]
    public void Columns_CoverTheColumns_OneGroupRowPerRow()
    {
        LaunchShape shape = LaunchShapes.Columns(PoCl, 287, 7);
        Assert.Equal(7, shape.GroupsY);
        Assert.True(shape.GroupsX * shape.GroupThreads >= 287);
        Assert.Equal(LaunchShapes.MaxColumnGroups, LaunchShapes.Columns(H100, 1L << 40, 1).GroupsX);
        Assert.Throws<ArgumentOutOfRangeException>(() => LaunchShapes.Columns(H100, 1, LaunchShapes.MaxGroupsY + 1));
    }
}
