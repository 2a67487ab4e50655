using NativeTensor.Memory;

namespace NativeTensor.Tests.Memory;

public sealed class WindowMemoryTests
{
    [Fact]
    public void The_sequence_embedding_case_costs_13_GB_eager_and_under_half_a_GB_lazy()
    {
        var m = WindowMemory.For(frames: 380_000, rowBytes: 287 * 4, window: 30, stride: 1, batch: 256);
        Assert.Equal(380_000L * 1148, m.FrameBytes);
        Assert.Equal(379_971, m.Windows);
        Assert.Equal(379_971L * 30 * 1148, m.EagerBytes);           // 13.09 GB
        Assert.Equal(256L * 30 * 1148, m.BatchBytes);
        Assert.Equal(m.FrameBytes + 4 * m.BatchBytes, m.LazyBytes(4));
        Assert.InRange(m.Reduction(4), 27.0, 28.0);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => WindowMemory.For(10, -1, 3, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => WindowMemory.For(10, 4, 0, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => WindowMemory.For(10, 4, 3, 1, 0));
        Assert.Throws<OverflowException>(() => WindowMemory.For(long.MaxValue / 2, 1 << 20, 30, 1, 1));
    }

    [Fact]
    public void Peak_resident_memory_grows_when_native_memory_is_touched()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "VmHWM is a Linux figure");
        long before = ProcessMemory.ResidentBytes!.Value;
        long during, peak;
        using (Tensor t = Tensor.Empty(DType.Float32, [64 << 20], Device.Cpu))
        {
            t.AsSpan<float>().Fill(1f);                              // 256 MiB, every page touched
            during = ProcessMemory.ResidentBytes!.Value;
            // Read while the pages are still mapped: Linux folds the current RSS into VmHWM when it reports it,
            // but does not always record the high-water mark when memory is unmapped.
            peak = ProcessMemory.PeakResidentBytes!.Value;
        }
        Assert.True(during - before >= 200L << 20, $"resident grew by {during - before} bytes for 256 MiB touched");
        // Linux batches its per-thread RSS counts, so the two figures can lag each other by a few pages: compare the
        // peak with the growth it must show, not byte for byte with the resident figure.
        Assert.True(peak - before >= 200L << 20, $"peak {peak} does not show the {during - before} bytes touched since {before}");
        Assert.True(ProcessMemory.ResidentBytes > 0);
    }
}
