using System.Globalization;
using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Memory.MappedFixtures;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// One mapping per file, unmapped exactly once whatever order its tensors are disposed in; no use after unmap through
/// the API; no leak over many opens; and To streams to a device while the file adds about one chunk to resident memory.
/// </summary>
public sealed unsafe class MappedLifetimeTests
{
    [Fact]
    public void The_tensors_of_one_file_share_one_mapping_that_goes_when_the_last_is_disposed_in_any_order()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc/self/maps is Linux's");
        string path = Path("all_dtypes.safetensors");
        foreach (int seed in new[] { 1, 2, 3 })
        {
            IReadOnlyDictionary<string, MappedTensor> tensors = MappedTensor.OpenSafetensors(path);
            Assert.True(MapsEntries(path) >= 1);   // madvise may split one mapping into several lines
            Assert.Single(tensors.Values.Select(t => t.Mapping).Distinct());
            MappedTensor[] order = [.. tensors.Values];
            new Random(seed).Shuffle(order);
            Tensor firstView = tensors["weight.f32"].Tensor;
            for (int i = 0; i < order.Length; i++)
            {
                order[i].Dispose();
                order[i].Dispose(); // twice is harmless
                Assert.True(i < order.Length - 1 ? MapsEntries(path) >= 1 : MapsEntries(path) == 0, $"after disposing {i + 1} of {order.Length}");
                // The others still read, and the disposed one refuses every use.
                foreach (MappedTensor alive in order[(i + 1)..]) _ = Tensor.CpuBytes(alive.Tensor.Buffer, alive.ByteCount).ToArray();
                Assert.Throws<ObjectDisposedException>(() => order[i].Tensor);
            }
            Assert.True(firstView.IsDisposed);
            Assert.Throws<ObjectDisposedException>(() => firstView.ToArray<float>());
            Assert.Throws<ObjectDisposedException>(() => Windows.Gather(firstView, [0L], 1));
            ((IDisposable)tensors).Dispose(); // after every tensor: nothing left to release, nothing released twice
        }
    }

    [Fact]
    public void Many_opens_leak_no_mappings()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc/self/maps is Linux's");
        for (int i = 0; i < 200; i++)
        {
            using (MappedTensor npy = MappedTensor.OpenNpy(Path("f4_v2.npy")))
                Assert.Equal(F32(5), npy.Tensor.AsReadOnlySpan<float>()[5]);
            var tensors = MappedTensor.OpenSafetensors(Path("all_dtypes.safetensors"));
            Assert.Equal(I64(1), tensors["big"].Tensor.AsReadOnlySpan<long>()[1]);
            ((IDisposable)tensors).Dispose();
            Assert.Throws<InvalidDataException>(() => MappedTensor.OpenNpy(Path("f4_fortran.npy")));
            Assert.Empty(MappedTensor.OpenSafetensors(Path("only_metadata.safetensors"))); // no tensors: nothing mapped, nothing to dispose
        }
        Assert.Equal(0, MapsEntries(Path("f4_v2.npy")));
        Assert.Equal(0, MapsEntries(Path("all_dtypes.safetensors")));
        Assert.Equal(0, MapsEntries(Path("f4_fortran.npy")));
        Assert.Equal(0, MapsEntries(Path("only_metadata.safetensors")));
    }

    [Fact]
    public void To_streams_to_the_cpu_while_the_file_adds_at_most_about_a_chunk_to_resident_memory()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc/self/smaps is Linux's");
        const long Rows = 16_384, Row = 1024, Chunk = 4 << 20; // 64 MiB of file, 4 MiB chunks
        using TempFile file = Temp(".npy");
        WriteRows(file.Path, Rows, Row);
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        long peak = 0, least = long.MaxValue, afterDrop = 0;
        long chunks = 0;
        using Tensor copy = mapped.To(Device.Cpu, Chunk, (_, dropped) =>
        {
            long resident = MappingRss(mapped.Mapping.Pointer, mapped.Mapping.Length);
            if (dropped) afterDrop = Math.Max(afterDrop, resident);
            else
            {
                chunks++;
                peak = Math.Max(peak, resident);
                least = Math.Min(least, resident);
            }
        });
        Assert.Equal((Rows * Row * 4 + Chunk - 1) / Chunk, chunks);
        // While a chunk is copied: that chunk, plus the kernel's fault-around on either side of it (64 KiB each).
        const long FaultAround = 2 * (64 << 10);
        long bound = Chunk + FaultAround + Environment.SystemPageSize;
        Assert.True(peak <= bound, $"the mapping held {peak:N0} bytes resident while streaming; bound {bound:N0}");
        Assert.True(least >= Chunk / 2, $"only {least:N0} bytes resident right after a chunk's copy: the probe does not see the chunk");
        // Once dropped, only the fault-around past its end may stay: not the chunk, and not the one before it.
        Assert.True(afterDrop <= FaultAround + Environment.SystemPageSize, $"{afterDrop:N0} bytes resident after a chunk was dropped");
        Assert.False(copy.IsReadOnly);
        float[] values = copy.ToArray<float>();
        for (long i = 0; i < values.Length; i += 4099) Assert.Equal(RowValue(i), values[i]);
        Assert.Equal(RowValue(values.Length - 1), values[^1]);
    }

    [Fact]
    public void To_streams_to_an_opencl_device_in_chunks_that_do_not_divide_the_tensor()
    {
        Device opencl = Backends.Require(DeviceKind.OpenCl);
        using MappedTensor mapped = MappedTensor.OpenNpy(Path("i8_v1.npy"));
        using Tensor copy = mapped.To(opencl, chunkBytes: 20); // 2 elements a chunk (rounded down to whole elements), 3 chunks
        Assert.Equal(opencl, copy.Device);
        Assert.Equal(Expected(6, I64), copy.ToArray<long>());
        Assert.Throws<ArgumentOutOfRangeException>(() => mapped.To(opencl, 0));
        mapped.Dispose();
        Assert.Throws<ObjectDisposedException>(() => mapped.To(opencl));
    }

    internal static float RowValue(long i) => (i % 1000) * 0.5f;

    /// <summary>A .npy of rows x row float32 whose element i is <see cref="RowValue"/>, written with NpyWriter batch by batch.</summary>
    internal static void WriteRows(string path, long rows, long row)
    {
        using var writer = new NpyWriter(path, DType.Float32, row);
        const long Batch = 1024;
        for (long r = 0; r < rows; r += Batch)
        {
            long k = Math.Min(Batch, rows - r);
            var values = new float[k * row];
            for (long i = 0; i < values.Length; i++) values[i] = RowValue(r * row + i);
            using Tensor batch = Tensor.FromArray(values, k, row);
            writer.Append(batch);
        }
    }

    /// <summary>How many lines of /proc/self/maps map <paramref name="path"/>.</summary>
    internal static int MapsEntries(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        return File.ReadLines("/proc/self/maps").Count(line => line.EndsWith(" " + full, StringComparison.Ordinal));
    }

    /// <summary>
    /// The resident bytes (smaps "Rss") of the mapping of <paramref name="length"/> bytes at <paramref name="address"/>,
    /// summed over its areas (madvise with different advice splits one mapping into several).
    /// </summary>
    internal static long MappingRss(byte* address, long length)
    {
        ulong begin = (ulong)address, end = begin + (ulong)length;
        long total = 0;
        bool inside = false, found = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            if (dash > 0 && line.Length > dash + 1 && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong from)
                && line.IndexOf(' ') is int space && space > dash
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong to))
            {
                inside = from >= begin && to <= (end + (ulong)Environment.SystemPageSize - 1) / (ulong)Environment.SystemPageSize * (ulong)Environment.SystemPageSize;
                found |= inside;
            }
            else if (inside && line.StartsWith("Rss:", StringComparison.Ordinal))
                total += long.Parse(line[4..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        return found ? total : throw new InvalidOperationException($"no mapping at {begin:x} in /proc/self/smaps");
    }
}
