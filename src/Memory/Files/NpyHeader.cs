using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace NativeTensor.Memory.Files;

/// <summary>
/// A validated <c>.npy</c> header (format versions 1.0, 2.0 and 3.0, as NumPy's <c>numpy.lib.format</c> defines them):
/// the tensor's element type and shape, and where its bytes lie in the file.
/// </summary>
/// <remarks>
/// Layout: the magic <c>\x93NUMPY</c>, major and minor version bytes, the header length (little-endian uint16 in 1.0,
/// uint32 in 2.0 and 3.0), then that many bytes of a Python dict literal (latin-1 in 1.0/2.0, UTF-8 in 3.0) with exactly
/// the keys <c>descr</c>, <c>fortran_order</c> and <c>shape</c>, padded with spaces and ended by a newline. The data
/// follows at once, C order. A file whose size is not exactly header + shape x itemsize is refused, longer ones too:
/// <c>np.save</c> never writes trailing bytes, so they mean a damaged or concatenated file.
/// </remarks>
internal sealed record NpyHeader(DType DType, long[] Shape, long DataOffset, long DataBytes)
{
    /// <summary>The magic's first byte while an <see cref="NpyWriter"/> has not finished the file (NumPy's is 0x93).</summary>
    public const byte UnfinishedMagic = 0x00;

    /// <summary>Longest header dict accepted, 1 MiB: NumPy itself refuses more than 10,000 bytes by default.</summary>
    public const int MaxHeaderBytes = 1 << 20;

    /// <summary>Bytes of the file's start needed before <see cref="Parse"/> can succeed: the fixed part, then the dict.</summary>
    public const int PreambleBytes = 12;

    /// <summary>Reads and validates the header of <paramref name="file"/> (of <paramref name="fileLength"/> bytes) with bounded reads.</summary>
    /// <exception cref="InvalidDataException">Any rule of the format, or of the element types NativeTensor reads, is broken.</exception>
    public static NpyHeader Read(string path, SafeFileHandle file, long fileLength, DType? storedAs)
    {
        byte[] preamble = FileBytes.Read(path, file, 0, (int)Math.Min(fileLength, PreambleBytes));
        long needed = DictEnd(path, preamble, fileLength);
        return Parse(path, FileBytes.Read(path, file, 0, (int)needed), fileLength, storedAs);
    }

    /// <summary>Validates a header from the first bytes of a file of <paramref name="fileLength"/> bytes.</summary>
    /// <param name="path">The file, for messages.</param>
    /// <param name="start">At least the whole header (more is ignored).</param>
    /// <param name="fileLength">The file's length in bytes.</param>
    /// <param name="storedAs">The caller's expected element type, if any.</param>
    /// <exception cref="InvalidDataException">Any rule is broken; the message names <paramref name="path"/> and the rule.</exception>
    public static NpyHeader Parse(string path, ReadOnlySpan<byte> start, long fileLength, DType? storedAs)
    {
        long dictEnd = DictEnd(path, start, fileLength);
        if (start.Length < dictEnd) throw FormatErrors.Refuse(path, $"the header needs {dictEnd} bytes but only {start.Length} were read");
        int major = start[6];
        int lengthBytes = major == 1 ? 2 : 4;
        ReadOnlySpan<byte> dictBytes = start[(8 + lengthBytes)..(int)dictEnd];
        string text;
        try
        {
            text = major == 3
                ? new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(dictBytes)
                : Encoding.Latin1.GetString(dictBytes);
        }
        catch (DecoderFallbackException)
        {
            throw FormatErrors.Refuse(path, "a version 3.0 header that is not valid UTF-8");
        }

        Dictionary<string, object> dict = PythonDictLiteral.Parse(text, rule => FormatErrors.Refuse(path, rule));
        foreach (string key in dict.Keys)
            if (key is not ("descr" or "fortran_order" or "shape"))
                throw FormatErrors.Refuse(path, $"header dict has key '{key}': a .npy header has exactly 'descr', 'fortran_order' and 'shape'");
        string descr = Entry<string>(path, dict, "descr", "a string");
        bool fortran = Entry<bool>(path, dict, "fortran_order", "True or False");
        long[] shape = Entry<long[]>(path, dict, "shape", "a tuple of integers");

        DType dtype = ElementType(path, descr, storedAs);
        if (fortran)
            throw FormatErrors.Refuse(path, "fortran_order is True: NativeTensor reads C order only (save np.ascontiguousarray(a) instead)");
        long bytes = FormatErrors.ShapeBytes(path, "shape", shape, dtype.SizeOf());
        long available = fileLength - dictEnd;
        if (bytes > available)
            throw FormatErrors.Refuse(path, $"shape ({string.Join(", ", shape)}) of {descr} needs {bytes} data bytes but the file has {available} after its header: the file is truncated");
        if (bytes < available)
            throw FormatErrors.Refuse(path, $"shape ({string.Join(", ", shape)}) of {descr} needs {bytes} data bytes but the file has {available} after its header: trailing bytes (np.save writes none)");
        return new NpyHeader(dtype, shape, dictEnd, bytes);
    }

    /// <summary>The offset just past the header dict (= where data begins), from the magic, version and length fields.</summary>
    private static long DictEnd(string path, ReadOnlySpan<byte> start, long fileLength)
    {
        if (start.Length < 8 || !start[1..6].SequenceEqual("NUMPY"u8))
            throw FormatErrors.Refuse(path, "not a .npy file (it does not begin with the magic \\x93NUMPY)");
        if (start[0] == UnfinishedMagic)
            throw FormatErrors.Refuse(path, "an unfinished .npy file: the NpyWriter that wrote it was never disposed, so its header was never completed");
        if (start[0] != 0x93)
            throw FormatErrors.Refuse(path, "not a .npy file (it does not begin with the magic \\x93NUMPY)");
        int major = start[6], minor = start[7];
        if (major is < 1 or > 3 || minor != 0)
            throw FormatErrors.Refuse(path, $"format version {major}.{minor}: NativeTensor reads versions 1.0, 2.0 and 3.0");
        int lengthBytes = major == 1 ? 2 : 4;
        if (start.Length < 8 + lengthBytes)
            throw FormatErrors.Refuse(path, $"the file ends inside the version {major}.0 preamble ({fileLength} bytes)");
        long dictLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(start[8..]) : BinaryPrimitives.ReadUInt32LittleEndian(start[8..]);
        if (dictLength > MaxHeaderBytes)
            throw FormatErrors.Refuse(path, $"header length {dictLength} exceeds the {MaxHeaderBytes}-byte limit");
        long end = 8 + lengthBytes + dictLength;
        if (end > fileLength)
            throw FormatErrors.Refuse(path, $"header length {dictLength} runs past the end of the file ({fileLength} bytes)");
        return end;
    }

    private static T Entry<T>(string path, Dictionary<string, object> dict, string key, string kind)
    {
        if (!dict.TryGetValue(key, out object? value)) throw FormatErrors.Refuse(path, $"header dict has no '{key}'");
        return value is T typed ? typed : throw FormatErrors.Refuse(path, $"header '{key}' is not {kind}");
    }

    /// <summary>The DType a descr stores, given the caller's <paramref name="storedAs"/> (required for <c>&lt;u2</c>: bfloat16 bits).</summary>
    private static DType ElementType(string path, string descr, DType? storedAs)
    {
        if (descr.Length != 3)
            throw FormatErrors.Refuse(path, $"descr '{descr}' is not supported: NativeTensor reads '<f4', '<f2', '<i4', '<i8' and '<u2' (bfloat16 bits)");
        switch (descr[0])
        {
            case '>': throw FormatErrors.Refuse(path, $"descr '{descr}' is big-endian: save it little-endian (a.astype(a.dtype.newbyteorder('<')))");
            // '=' and '|' mean the writer's native order, which is little-endian on every machine NativeTensor runs on.
            case '<' or '=' or '|' when BitConverter.IsLittleEndian: break;
            default: throw FormatErrors.Refuse(path, $"descr '{descr}' has byte order '{descr[0]}': only little-endian ('<') data is read");
        }
        DType? natural = descr[1..] switch
        {
            "f4" => DType.Float32,
            "f2" => DType.Float16,
            "i4" => DType.Int32,
            "i8" => DType.Int64,
            "u2" => null,
            _ => throw FormatErrors.Refuse(path, $"descr '{descr}' is not supported: NativeTensor reads '<f4', '<f2', '<i4', '<i8' and '<u2' (bfloat16 bits)"),
        };
        if (natural is null)
        {
            if (storedAs == DType.BFloat16) return DType.BFloat16;
            throw FormatErrors.Refuse(path, storedAs is null
                ? $"descr '{descr}' is uint16: NumPy has no bfloat16, so bfloat16 is saved as uint16 bits; pass storedAs: DType.BFloat16 to read it so"
                : $"descr '{descr}' is uint16 but storedAs is {storedAs}: uint16 is read only as bfloat16 bits (storedAs: DType.BFloat16)");
        }
        if (storedAs is { } asked && asked != natural)
            throw FormatErrors.Refuse(path, $"descr '{descr}' is {natural} but storedAs is {asked}");
        return natural.Value;
    }
}
