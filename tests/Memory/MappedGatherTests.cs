using NativeTensor.Memory;
using NativeTensor.Memory.Files;
using static NativeTensor.Tests.Memory.MappedFixtures;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// Windows.Gather on a mapped tensor: the same bytes as gathering from RAM (plain and fused with a conversion), and
/// after the file is dropped from the page cache, only the header's pages and the gathered rows' pages are read.
/// </summary>
public sealed class MappedGatherTests
{
    private const long Frames = 2000, Row = 3000; // 12,000-byte rows: each spans parts of 3 or 4 pages; 24 MB in all
    private const int Window = 3;

    [Fact]
    public void Gathering_from_the_mapped_file_equals_gathering_from_the_same_frames_in_ram()
    {
        using TempFile file = Temp(".npy");
        MappedLifetimeTests.WriteRows(file.Path, Frames, Row);
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        using Tensor ram = Tensor.Empty(DType.Float32, [Frames, Row], Device.Cpu);
        mapped.Tensor.AsReadOnlySpan<float>().CopyTo(ram.AsSpan<float>());
        long[] starts = [0, 1997, 5, 1000, 999, 1234, 3, 1997];
        foreach (DType? outputType in new DType?[] { null, DType.BFloat16, DType.Float16 })
        {
            using Tensor fromFile = Windows.Gather(mapped.Tensor, starts, Window, outputType: outputType);
            using Tensor fromRam = Windows.Gather(ram, starts, Window, outputType: outputType);
            Assert.Equal(Tensor.CpuBytes(fromRam.Buffer, fromRam.ByteCount).ToArray(), Tensor.CpuBytes(fromFile.Buffer, fromFile.ByteCount).ToArray());
            if (outputType is null) Assert.Equal(RowValue(1997 * Row + 2 * Row + 17), fromFile.AsReadOnlySpan<float>()[(1 * Window + 2) * (int)Row + 17]);
        }
        // BFloat16 frames (a <u2 file) gathered straight into Float32 batches.
        using TempFile bf16 = Temp(".npy");
        using (var writer = new NpyWriter(bf16.Path, DType.BFloat16, Row))
        using (Tensor frames16 = Precision.Convert(ram, DType.BFloat16))
            writer.Append(frames16);
        using MappedTensor mapped16 = MappedTensor.OpenNpy(bf16.Path, DType.BFloat16);
        using Tensor ram16 = Precision.Convert(ram, DType.BFloat16);
        using Tensor a = Windows.Gather(mapped16.Tensor, starts, Window, outputType: DType.Float32);
        using Tensor b = Windows.Gather(ram16, starts, Window, outputType: DType.Float32);
        Assert.Equal(b.ToArray<float>(), a.ToArray<float>());
    }

    [Fact]
    public void A_cold_gather_reads_only_the_header_and_the_gathered_rows_pages()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "mincore and posix_fadvise are Linux's");
        using TempFile file = Temp(".npy");
        MappedLifetimeTests.WriteRows(file.Path, Frames, Row);
        using (var stream = new FileStream(file.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Flush(flushToDisk: true); // only clean pages can be dropped
            Assert.SkipUnless(FileMapping.DropFromPageCache(stream.SafeFileHandle), "posix_fadvise(DONTNEED) was refused");
        }
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        long page = Environment.SystemPageSize;
        long rowBytes = Row * sizeof(float);
        bool[] before = mapped.Mapping.ResidentPages()!;
        int residentBefore = before.Count(r => r);
        // Opening read the header (one page) through a random-access handle: nothing else may be resident. A kernel
        // or file system that keeps pages anyway cannot show which pages a gather touched.
        Assert.SkipWhen(residentBefore > 2, $"{residentBefore} of {before.Length} pages stayed in the page cache after DropFromPageCache: this kernel or file system keeps them");

        long[] starts = [17, 1500, 640, 1996];
        using Tensor batch = Windows.Gather(mapped.Tensor, starts, Window);
        bool[] after = mapped.Mapping.ResidentPages()!;

        bool Gathered(long p) => p * page < mapped.ByteOffset || starts.Any(s =>
            p * page < mapped.ByteOffset + (s + Window) * rowBytes && (p + 1) * page > mapped.ByteOffset + s * rowBytes);
        long[] stray = [.. Enumerable.Range(0, after.Length).Where(p => after[p] && !Gathered(p)).Select(p => (long)p)];
        Assert.True(stray.Length == 0, $"pages resident that no gathered row touches: {string.Join(", ", stray.Take(20))} ({stray.Length} of {after.Length})");
        long needed = Enumerable.Range(0, after.Length).Count(p => Gathered(p));
        Assert.True(after.Count(r => r) == needed, $"{after.Count(r => r)} pages resident; the header and gathered rows span {needed}");
        Assert.Equal(RowValue(1500 * Row + Row + 7), batch.AsReadOnlySpan<float>()[(1 * Window + 1) * (int)Row + 7]);
    }

    private static float RowValue(long i) => MappedLifetimeTests.RowValue(i);
}
