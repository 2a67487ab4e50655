using System.Runtime.InteropServices;
using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Memory.MappedFixtures;

namespace NativeTensor.Tests.Memory;

/// <summary>NpyWriter: rows streamed in batches come back whole (through OpenNpy and np.load); an unfinished file never looks complete.</summary>
public sealed class NpyWriterTests
{
    [Fact]
    public void Batches_of_any_size_append_into_one_array_that_opens_as_written()
    {
        float[] all = Expected(10 * 3 * 4, F32);
        using TempFile file = Temp(".npy");
        using (var writer = new NpyWriter(file.Path, DType.Float32, 3, 4))
        {
            int row = 0;
            foreach (int k in new[] { 4, 0, 1, 5 })
            {
                using Tensor batch = Tensor.FromArray(all[(row * 12)..((row + k) * 12)], k, 3, 4);
                writer.Append(batch);
                row += k;
            }
            Assert.Equal(10, writer.Rows);
        }
        byte[] bytes = File.ReadAllBytes(file.Path);
        Assert.Equal(0, (bytes.Length - all.Length * 4) % 64); // NumPy's alignment of the data
        Assert.Equal(1, bytes[6]);                              // version 1.0: the header fits 16 bits
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        Assert.Equal([10L, 3, 4], mapped.Shape);
        Assert.Equal(all, mapped.Tensor.ToArray<float>());
    }

    [Fact]
    public void Every_dtype_and_a_one_dimensional_file_round_trip()
    {
        RoundTrip(DType.Float16, Expected(12, F16), [2, 3], storedAs: null);
        RoundTrip(DType.BFloat16, Expected(12, BF16), [2, 3], storedAs: DType.BFloat16);
        RoundTrip(DType.Int32, Expected(12, I32), [], storedAs: null);
        RoundTrip(DType.Int64, Expected(12, I64), [6], storedAs: null);
        RoundTrip(DType.Float32, Expected(0, F32), [7], storedAs: null);
    }

    [Fact]
    public void A_file_has_at_most_64_axes_and_its_header_always_fits_version_1()
    {
        long[] rowShape = [.. Enumerable.Repeat(1L, NpyWriter.MaxRank - 1)];
        using TempFile file = Temp(".npy");
        using (var writer = new NpyWriter(file.Path, DType.Int32, rowShape))
        using (Tensor rows = Tensor.FromArray(Expected(3, I32), [3, .. rowShape]))
            writer.Append(rows);
        Assert.Equal(1, File.ReadAllBytes(file.Path)[6]);
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        Assert.Equal(NpyWriter.MaxRank, mapped.Shape.Count);
        Assert.Equal(Expected(3, I32), mapped.Tensor.ToArray<int>());
        var e = Assert.Throws<ArgumentException>(() => new NpyWriter(file.Path, DType.Int32, [.. rowShape, 1]));
        Assert.Contains("at most 64", e.Message);
    }

    [Fact]
    public void Replacing_a_file_that_is_mapped_leaves_its_reader_on_the_old_bytes()
    {
        using TempFile file = Temp(".npy");
        float[] before = Expected(1024 * 64, F32), after = [.. before.Select(v => -v)];
        Write(file.Path, before);
        using MappedTensor old = MappedTensor.OpenNpy(file.Path);
        using (var writer = new NpyWriter(file.Path, DType.Float32, 64))
        {
            using Tensor rows = Tensor.FromArray(after, 1024, 64);
            writer.Append(rows);
            Assert.Equal(before, old.Tensor.ToArray<float>());   // the writer has not touched the old file
        }
        // Renamed over the path: the old mapping still reads the old inode (a truncation would have faulted here).
        using (Tensor batch = Windows.Gather(old.Tensor, [1000L], 24)) Assert.Equal(before[(1000 * 64)..], batch.ToArray<float>());
        using MappedTensor fresh = MappedTensor.OpenNpy(file.Path);
        Assert.Equal(after, fresh.Tensor.ToArray<float>());
    }

    [Fact]
    public void A_failed_append_deletes_the_partial_file_and_dispose_does_not_throw_again()
    {
        Assert.SkipUnless(File.Exists(DevFull), $"{DevFull} is missing: no device to make a write fail with ENOSPC");
        using TempFile file = Temp(".npy");
        var writer = new NpyWriter(file.Path, DType.Float32, [1024], WritesFail);
        string partial = writer.PartialPath;
        Assert.True(File.Exists(partial));
        using Tensor rows = Tensor.Zeros(DType.Float32, [1024, 1024], Device.Cpu); // 4 MiB: past the 1 MiB write buffer
        Assert.Throws<IOException>(() => writer.Append(rows));
        Assert.Equal(0, writer.Rows);
        Assert.Contains("failed part way", Assert.Throws<InvalidOperationException>(() => writer.Append(rows)).Message);
        writer.Dispose();                                            // the stream's stuck buffer fails again, quietly
        Assert.False(File.Exists(partial));
        Assert.False(File.Exists(file.Path));
    }

    [Fact]
    public void A_dispose_that_cannot_write_the_file_throws_deletes_it_and_leaves_the_old_file_at_the_path()
    {
        Assert.SkipUnless(File.Exists(DevFull), $"{DevFull} is missing: no device to make a write fail with ENOSPC");
        using TempFile file = Temp(".npy");
        float[] old = Expected(4 * 64, F32);
        Write(file.Path, old);
        var writer = new NpyWriter(file.Path, DType.Float32, [64], WritesFail);
        using (Tensor rows = Tensor.Zeros(DType.Float32, [2, 64], Device.Cpu)) writer.Append(rows); // stays in the buffer
        Assert.Throws<IOException>(writer.Dispose);
        Assert.False(File.Exists(writer.PartialPath));
        writer.Dispose();                                            // already disposed: nothing more to say
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        Assert.Equal(old, mapped.Tensor.ToArray<float>());
    }

    [Fact]
    public void Numpy_loads_what_the_writer_wrote()
    {
        string? why = PythonWithNumpyMissing();
        if (why is not null) Assert.Skip(why);
        (DType DType, string Descr, byte[] Data)[] cases =
        [
            (DType.Float32, "<f4", MemoryMarshal.AsBytes(Expected(5 * 287, F32).AsSpan()).ToArray()),
            (DType.Float16, "<f2", MemoryMarshal.AsBytes(Expected(5 * 287, F16).AsSpan()).ToArray()),
            (DType.BFloat16, "<u2", MemoryMarshal.AsBytes(Expected(5 * 287, BF16).AsSpan()).ToArray()),
            (DType.Int64, "<i8", MemoryMarshal.AsBytes(Expected(5 * 287, I64).AsSpan()).ToArray()),
        ];
        foreach ((DType dtype, string descr, byte[] data) in cases)
        {
            using TempFile file = Temp(".npy");
            using (var writer = new NpyWriter(file.Path, dtype, 287))
            using (Tensor rows = Tensor.Empty(dtype, [5, 287], Device.Cpu))
            {
                Tensor.CpuBytes(rows.Buffer, rows.ByteCount).Clear();
                data.CopyTo(Tensor.CpuBytes(rows.Buffer, rows.ByteCount));
                writer.Append(rows);
            }
            (int exit, string output, string error) = Python(
                "import sys, numpy as np; a = np.load(sys.argv[1]); print(a.dtype.str, a.shape, a.flags['C_CONTIGUOUS'], a.tobytes().hex())", file.Path);
            Assert.True(exit == 0, $"np.load failed on {dtype}: {error}");
            Assert.Equal($"{descr} (5, 287) True {Convert.ToHexStringLower(data)}", output.Trim());
        }
    }

    [Fact]
    public void An_abandoned_writer_leaves_nothing_at_the_path_and_a_partial_file_OpenNpy_refuses()
    {
        using TempFile file = Temp(".npy");
        var writer = new NpyWriter(file.Path, DType.Float32, 1024);
        using TempFile partial = new(writer.PartialPath);
        using (Tensor rows = Tensor.Zeros(DType.Float32, [1024, 1024], Device.Cpu)) writer.Append(rows); // 4 MiB: past the write buffer
        Assert.True(new FileInfo(partial.Path).Length > 4 << 20, "the rows should be on disk already");
        Assert.False(File.Exists(file.Path));

        var e = Assert.Throws<InvalidDataException>(() => MappedTensor.OpenNpy(partial.Path));
        Assert.Contains("unfinished .npy file: the NpyWriter that wrote it was never disposed", e.Message);
        writer.Dispose();
        Assert.False(File.Exists(partial.Path));
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        Assert.Equal([1024L, 1024], mapped.Shape);
    }

    [Fact]
    public void Numpy_refuses_an_unfinished_partial_file()
    {
        string? why = PythonWithNumpyMissing();
        if (why is not null) Assert.Skip(why);
        using TempFile file = Temp(".npy");
        using var writer = new NpyWriter(file.Path, DType.Float32, 16);
        using (Tensor rows = Tensor.Zeros(DType.Float32, [8, 16], Device.Cpu)) writer.Append(rows);
        writer.Stream.Flush();
        (int exit, _, string error) = Python("import sys, numpy as np; np.load(sys.argv[1])", writer.PartialPath);
        Assert.True(exit != 0, "np.load accepted an unfinished file");
        Assert.Contains("pickle", error); // NumPy: not the .npy magic, so not a .npy file
    }

    [Fact]
    public void Rows_on_a_device_are_streamed_to_the_file()
    {
        Device opencl = Backends.Require(DeviceKind.OpenCl);
        float[] values = Expected(64 * 287, F32);
        using TempFile file = Temp(".npy");
        using (var writer = new NpyWriter(file.Path, DType.Float32, 287))
        using (Tensor host = Tensor.FromArray(values, 64, 287))
        using (Tensor device = host.To(opencl))
            writer.Append(device);
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        Assert.Equal(values, mapped.Tensor.ToArray<float>());
    }

    [Fact]
    public void Bad_rows_are_refused_before_anything_is_written()
    {
        using TempFile file = Temp(".npy");
        using (var writer = new NpyWriter(file.Path, DType.Float32, 3))
        {
            using Tensor good = Tensor.FromArray(Expected(6, F32), 2, 3);
            using Tensor wrongType = Tensor.FromArray(Expected(6, I32), 2, 3);
            using Tensor wrongRow = Tensor.FromArray(Expected(6, F32), 3, 2);
            using Tensor wrongRank = Tensor.FromArray(Expected(6, F32), 6);
            Tensor disposed = Tensor.FromArray(Expected(6, F32), 2, 3);
            disposed.Dispose();
            Assert.Contains("Int32", Assert.Throws<ArgumentException>(() => writer.Append(wrongType)).Message);
            Assert.Contains("[k, 3]", Assert.Throws<ArgumentException>(() => writer.Append(wrongRow)).Message);
            Assert.Throws<ArgumentException>(() => writer.Append(wrongRank));
            Assert.Throws<ObjectDisposedException>(() => writer.Append(disposed));
            Assert.Throws<ArgumentNullException>(() => writer.Append(null!));
            writer.Append(good);
            Assert.Equal(2, writer.Rows);
            writer.Dispose();
            Assert.Throws<ObjectDisposedException>(() => writer.Append(good));
        }
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        Assert.Equal(Expected(6, F32), mapped.Tensor.ToArray<float>());
        Assert.Throws<ArgumentException>(() => new NpyWriter(file.Path, DType.Float32, 3, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NpyWriter(file.Path, (DType)99, 3));
    }

    private static void RoundTrip<T>(DType dtype, T[] values, long[] rowShape, DType? storedAs) where T : unmanaged
    {
        using TempFile file = Temp(".npy");
        long rowElements = rowShape.Aggregate(1L, (a, b) => a * b);
        long rows = rowElements == 0 ? 0 : values.Length / rowElements;
        using (var writer = new NpyWriter(file.Path, dtype, rowShape))
        using (Tensor all = Tensor.FromArray(values, [rows, .. rowShape]))
            writer.Append(all);
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path, storedAs);
        Assert.Equal([rows, .. rowShape], mapped.Shape);
        Assert.Equal(dtype, mapped.DType);
        Assert.Equal(values, mapped.Tensor.ToArray<T>());
    }

    private const string DevFull = "/dev/full";

    /// <summary>Creates the partial file (so its deletion can be seen) but sends the writes to /dev/full, where every one fails with ENOSPC.</summary>
    private static FileStream WritesFail(string partial)
    {
        File.Create(partial).Dispose();
        return new FileStream(DevFull, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1 << 20);
    }

    private static void Write(string path, float[] values)
    {
        using var writer = new NpyWriter(path, DType.Float32, 64);
        using Tensor rows = Tensor.FromArray(values, values.Length / 64, 64);
        writer.Append(rows);
    }
}
