using System.Buffers.Binary;
using System.Text;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// The committed fixtures in tests/Memory/Fixtures (made by make_fixtures.py there, with NumPy) and the formulas their
/// values come from, recomputed here; plus temp files and hand-built headers for the refusal tests.
/// </summary>
internal static class MappedFixtures
{
    /// <summary>The fixture folder, found from the test assembly's folder up to the repository.</summary>
    public static string Folder { get; } = Fixtures.Folder(System.IO.Path.Combine("Memory", "Fixtures"));

    public static string Path(string name) => System.IO.Path.Combine(Folder, name);

    /// <summary>Element i of the fixture formulas (C order), as the fixture script computes it.</summary>
    public static float F32(long i) => i * 0.25f - 3;

    public static Half F16(long i) => (Half)(i * 0.5f - 2);

    public static int I32(long i) => (int)(i * 7 - 20);

    public static long I64(long i) => i * 3_000_000_000 - 7;

    public static BFloat16 BF16(long i) => BFloat16.FromSingle(F32(i));

    public static T[] Expected<T>(long count, Func<long, T> formula) => Enumerable.Range(0, (int)count).Select(i => formula(i)).ToArray();

    /// <summary>A fresh path in the temp folder, deleted when disposed.</summary>
    public static TempFile Temp(string extension) => new(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"nt-mapped-{Guid.NewGuid():N}{extension}"));

    /// <summary>A .npy file's bytes: magic (first byte given), version, length field (the dict's length unless given), the dict ended by '\n', then data.</summary>
    public static byte[] Npy(string dict, ReadOnlySpan<byte> data, int major = 1, byte magic = 0x93, int? lengthField = null, Encoding? encoding = null)
    {
        byte[] text = (encoding ?? Encoding.Latin1).GetBytes(dict + "\n");
        int preamble = major == 1 ? 10 : 12;
        var bytes = new byte[preamble + text.Length + data.Length];
        bytes[0] = magic;
        "NUMPY"u8.CopyTo(bytes.AsSpan(1));
        bytes[6] = (byte)major;
        int length = lengthField ?? text.Length;
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)length);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)length);
        text.CopyTo(bytes, preamble);
        data.CopyTo(bytes.AsSpan(preamble + text.Length));
        return bytes;
    }

    /// <summary>A .safetensors file's bytes: the 8-byte length (or <paramref name="lengthField"/>), the JSON, then <paramref name="bufferBytes"/> bytes of data.</summary>
    public static byte[] Safetensors(string json, int bufferBytes, ulong? lengthField = null)
    {
        byte[] text = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + text.Length + bufferBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthField ?? (ulong)text.Length);
        text.CopyTo(bytes, 8);
        for (int i = 0; i < bufferBytes; i++) bytes[8 + text.Length + i] = (byte)(i * 37 + 1);
        return bytes;
    }

    /// <summary>/usr/bin/python3 with NumPy, or null with the reason it is missing.</summary>
    public static string? PythonWithNumpyMissing()
    {
        if (!File.Exists("/usr/bin/python3")) return "no /usr/bin/python3";
        (int exit, _, string error) = Python("import numpy");
        return exit == 0 ? null : $"/usr/bin/python3 has no numpy: {error.Trim()}";
    }

    /// <summary>Runs a Python snippet with /usr/bin/python3; returns its exit code, stdout and stderr.</summary>
    public static (int Exit, string Output, string Error) Python(string code, params string[] args)
    {
        ChildProcess.Result result = ChildProcess.Run("/usr/bin/python3", ["-c", code, .. args], minutes: 10);
        return (result.Exit, result.Output, result.Error);
    }
}

/// <summary>A temp file path deleted on dispose.</summary>
internal sealed class TempFile(string path) : IDisposable
{
    public string Path { get; } = path;

    public void Write(byte[] bytes) => File.WriteAllBytes(Path, bytes);

    public void Dispose()
    {
        if (File.Exists(Path)) File.Delete(Path);
    }
}
