using NativeTensor.Memory;
using static NativeTensor.Tests.Memory.MappedFixtures;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// MappedTensor.OpenNpy on files NumPy wrote (the committed fixtures: versions 1.0/2.0/3.0, every dtype, scalar and
/// empty shapes) and on hand-built headers breaking one rule each: every refusal is an InvalidDataException naming the
/// file and the rule.
/// </summary>
public sealed class NpyFileTests
{
    [Theory]
    [InlineData("f4_v1.npy", new long[] { 2, 3 })]
    [InlineData("f4_v2.npy", new long[] { 3, 2 })]
    [InlineData("f4_v3.npy", new long[] { 2, 2, 2 })]
    [InlineData("f4_scalar.npy", new long[0])]
    [InlineData("f4_empty_rows.npy", new long[] { 2, 0 })]
    public void Float32_files_of_every_version_and_shape_read_as_numpy_wrote_them(string name, long[] shape)
    {
        using MappedTensor mapped = MappedTensor.OpenNpy(Path(name));
        Assert.Equal(DType.Float32, mapped.DType);
        Assert.Equal(shape, mapped.Shape);
        Assert.True(mapped.Tensor.IsReadOnly);
        Assert.Equal(Device.Cpu, mapped.Tensor.Device);
        Assert.Equal(new FileInfo(Path(name)).Length - mapped.ByteCount, mapped.ByteOffset);
        Assert.Equal(Expected(mapped.Tensor.ElementCount, F32), mapped.Tensor.ToArray<float>());
    }

    [Fact]
    public void Every_dtype_reads_its_formula()
    {
        using (MappedTensor m = MappedTensor.OpenNpy(Path("f2_v1.npy"))) Assert.Equal(Expected(6, F16), m.Tensor.ToArray<Half>());
        using (MappedTensor m = MappedTensor.OpenNpy(Path("f2_scalar.npy"))) Assert.Equal(Expected(1, F16), m.Tensor.ToArray<Half>());
        using (MappedTensor m = MappedTensor.OpenNpy(Path("i4_v1.npy"))) Assert.Equal(Expected(6, I32), m.Tensor.ToArray<int>());
        using (MappedTensor m = MappedTensor.OpenNpy(Path("i4_v3.npy"))) Assert.Equal(Expected(4, I32), m.Tensor.ToArray<int>());
        using (MappedTensor m = MappedTensor.OpenNpy(Path("i8_v1.npy"))) Assert.Equal(Expected(6, I64), m.Tensor.ToArray<long>());
        using (MappedTensor m = MappedTensor.OpenNpy(Path("i8_v1.npy"), DType.Int64)) Assert.Equal(DType.Int64, m.DType);
        using (MappedTensor m = MappedTensor.OpenNpy(Path("i8_empty.npy")))
        {
            Assert.Equal([0L], m.Shape);
            Assert.Empty(m.Tensor.ToArray<long>());
        }
        using (MappedTensor m = MappedTensor.OpenNpy(Path("bf16_v1.npy"), DType.BFloat16))
        {
            Assert.Equal(DType.BFloat16, m.DType);
            Assert.Equal(Expected(6, BF16), m.Tensor.ToArray<BFloat16>());
        }
    }

    [Theory]
    [InlineData("f4_fortran.npy", "fortran_order is True")]
    [InlineData("f4_bigendian.npy", "big-endian")]
    [InlineData("f8_unsupported.npy", "'<f8' is not supported")]
    [InlineData("bf16_v1.npy", "pass storedAs: DType.BFloat16")]
    public void Files_numpy_wrote_that_nativetensor_does_not_read_are_refused_with_the_rule(string name, string rule)
    {
        var e = Assert.Throws<InvalidDataException>(() => MappedTensor.OpenNpy(Path(name)));
        Assert.Contains(Path(name), e.Message);
        Assert.Contains(rule, e.Message);
    }

    [Theory]
    [InlineData("f4_v1.npy", DType.BFloat16, "is Float32 but storedAs is BFloat16")]
    [InlineData("bf16_v1.npy", DType.Float16, "uint16 is read only as bfloat16")]
    [InlineData("i4_v1.npy", DType.Int64, "is Int32 but storedAs is Int64")]
    public void A_stored_type_unlike_the_descr_is_refused(string name, DType storedAs, string rule)
    {
        var e = Assert.Throws<InvalidDataException>(() => MappedTensor.OpenNpy(Path(name), storedAs));
        Assert.Contains(rule, e.Message);
    }

    public static TheoryData<string, byte[]> BrokenHeaders()
    {
        byte[] six = new byte[24];
        return new()
        {
            { "not a .npy file", "PK\x03\x04 not numpy at all"u8.ToArray() },
            { "not a .npy file", [0x93, (byte)'N', (byte)'U', (byte)'M'] },
            { "unfinished .npy file", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", six, magic: 0) },
            { "format version 4.0", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", six, major: 4) },
            { "runs past the end of the file", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", six, lengthField: 60000) },
            { "runs past the end of the file", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", six, major: 2, lengthField: 100_000) },
            { "exceeds the 1048576-byte limit", Npy("{}", [], major: 2, lengthField: (1 << 20) + 1) },
            { "the file is truncated", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", six) },
            { "trailing bytes", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", six) },
            { "a negative extent", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", six) },
            { "overflows a 64-bit integer", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3), }", six) },
            { "overflows a 64-bit byte count", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", six) },
            { "is not a tuple", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", six) },
            { "has no 'shape'", Npy("{'descr': '<f4', 'fortran_order': False, }", six) },
            { "has key 'descr' twice", Npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", six) },
            { "has key 'extra'", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 'x', }", six) },
            { "'fortran_order' is not True or False", Npy("{'descr': '<f4', 'fortran_order': 'no', 'shape': (2, 3), }", six) },
            { "not a NumPy header literal", Npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", six) },
            { "not a NumPy header literal", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk", six) },
            { "not a NumPy header literal", Npy("{'descr': '<f4\\x00', 'fortran_order': False, 'shape': (2, 3), }", six) },
            { "not valid UTF-8", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x\xff': 1}", six, major: 3) },
            { "byte order 'x'", Npy("{'descr': 'xf4', 'fortran_order': False, 'shape': (2, 3), }", six) },
            { "65 axes: at most 64", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (" + string.Join(", ", Enumerable.Repeat(1, 65)) + "), }", new byte[4]) },
            // NumPy's rule: the non-zero extents must fit whatever the zeros, in either order.
            { "overflows a 64-bit byte count", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4611686018427387904), }", []) },
            { "overflows a 64-bit byte count", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904, 0), }", []) },
        };
    }

    [Theory]
    [MemberData(nameof(BrokenHeaders))]
    public void A_header_breaking_a_rule_is_refused_naming_the_file_and_the_rule(string rule, byte[] bytes)
    {
        using TempFile file = Temp(".npy");
        file.Write(bytes);
        var e = Assert.Throws<InvalidDataException>(() => MappedTensor.OpenNpy(file.Path));
        Assert.StartsWith(file.Path + ": ", e.Message);
        Assert.Contains(rule, e.Message);
    }

    [Theory]
    [InlineData("=f4")]
    [InlineData("|f4")]
    [InlineData("<f4")]
    public void Native_byte_order_forms_read_as_little_endian(string descr)
    {
        float[] values = Expected(6, F32);
        byte[] data = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        using TempFile file = Temp(".npy");
        // Python 2 era headers: double quotes, 'L' suffixes, no trailing comma; version 3.0 (UTF-8) for one of them.
        file.Write(Npy($"{{\"descr\": \"{descr}\", \"fortran_order\": False, \"shape\": (2L, 3L)}}", data, major: descr == "<f4" ? 3 : 1));
        using MappedTensor mapped = MappedTensor.OpenNpy(file.Path);
        Assert.Equal(values, mapped.Tensor.ToArray<float>());
    }

    [Fact]
    public async Task A_path_that_is_not_a_regular_file_is_refused_at_once()
    {
        Assert.Contains("is a directory", Assert.Throws<IOException>(() => MappedTensor.OpenNpy(System.IO.Path.GetTempPath())).Message);
        Assert.Contains("is a directory", Assert.Throws<IOException>(() => MappedTensor.OpenSafetensors(System.IO.Path.GetTempPath())).Message);
        Assert.SkipUnless(OperatingSystem.IsLinux(), "FIFOs and statx are checked on Linux");
        Assert.Contains("character device", Assert.Throws<IOException>(() => MappedTensor.OpenNpy("/dev/null")).Message);
        string fifo = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"nt-fifo-{Guid.NewGuid():N}");
        Assert.Equal(0, Mkfifo(fifo, 0x180));
        try
        {
            // Opening a FIFO for reading would block until a writer came: the refusal must come first.
            var open = Task.Run(() => MappedTensor.OpenNpy(fifo));
            Assert.True(await Task.WhenAny(open, Task.Delay(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken)) == open, "OpenNpy blocked on a FIFO");
            Assert.Contains("FIFO", Assert.IsType<IOException>(open.Exception!.InnerException).Message);
        }
        finally
        {
            File.Delete(fifo);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mkfifo", CharSet = System.Runtime.InteropServices.CharSet.Ansi)]
    private static extern int Mkfifo(string path, int mode);

    [Fact]
    public void A_missing_file_is_a_file_not_found_error_and_null_is_refused()
    {
        Assert.Throws<FileNotFoundException>(() => MappedTensor.OpenNpy(Path("no-such-file.npy")));
        Assert.Throws<ArgumentNullException>(() => MappedTensor.OpenNpy(null!));
    }

    [Fact]
    public void The_committed_fixtures_are_what_the_committed_script_writes()
    {
        string? why = PythonWithNumpyMissing();
        if (why is not null) Assert.Skip(why);
        string folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"nt-fixtures-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            (int exit, _, string error) = Python($"import os, runpy; os.chdir({Quoted(folder)}); runpy.run_path({Quoted(Path("make_fixtures.py"))})");
            Assert.True(exit == 0, error);
            string[] made = [.. Directory.GetFiles(folder).Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal)!];
            string[] committed = [.. Directory.GetFiles(Folder).Select(System.IO.Path.GetFileName).Where(n => n != "make_fixtures.py").Order(StringComparer.Ordinal)!];
            Assert.Equal(committed, made);
            foreach (string name in made) Assert.True(File.ReadAllBytes(Path(name)).AsSpan().SequenceEqual(File.ReadAllBytes(System.IO.Path.Combine(folder, name))), $"{name} differs from what make_fixtures.py writes");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static string Quoted(string path) => "'" + path.Replace("\\", "\\\\").Replace("'", "\\'") + "'";
}
