using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using NativeTensor.Memory.Files;
using NativeTensor.Runtime;

namespace NativeTensor.Memory;

/// <summary>
/// Writes a <c>.npy</c> file row batch by row batch, so embeddings produced in batches reach the file without ever being
/// held together: <see cref="Append"/> streams each batch's bytes to the file and <see cref="Dispose"/> writes the final
/// row count into the header. <c>np.load</c> and <see cref="MappedTensor.OpenNpy"/> read the result.
/// </summary>
/// <remarks>
/// <para>The header is written first with room for a 20-digit row count (padded with spaces inside the shape tuple,
/// which Python's literal syntax allows), so fixing it up never changes its length; the whole preamble is a multiple of
/// 64 bytes, as NumPy writes it. Format 1.0 is used when the header fits its 16-bit length field, else 2.0. BFloat16 is
/// written as <c>&lt;u2</c> (NumPy has no bfloat16): open it with <c>storedAs: DType.BFloat16</c>.</para>
/// <para>Until <see cref="Dispose"/> completes, the file's first byte is 0x00 instead of NumPy's magic 0x93 and its shape
/// says 0 rows: a writer that is abandoned (never disposed, or whose process died) or whose <see cref="Append"/> failed
/// leaves a file that <c>np.load</c> refuses as not a .npy file and <see cref="MappedTensor.OpenNpy"/> refuses naming it an
/// unfinished NpyWriter file, never one that looks complete.</para>
/// </remarks>
public sealed class NpyWriter : IDisposable
{
    private const int CountDigits = 20;
    private const int StagingBytes = 16 << 20;

    private readonly FileStream _file;
    private readonly long[] _rowShape;
    private readonly long _rowBytes;
    private readonly int _headerBytes;
    private bool _failed;
    private bool _disposed;

    /// <summary>Creates (or replaces) <paramref name="path"/> for rows of <paramref name="rowShape"/> elements of <paramref name="dtype"/>.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="dtype">The element type; Float32 <c>&lt;f4</c>, Float16 <c>&lt;f2</c>, Int32 <c>&lt;i4</c>, Int64 <c>&lt;i8</c>, BFloat16 <c>&lt;u2</c>.</param>
    /// <param name="rowShape">The shape of one row (empty: the file is 1-D, one element per row).</param>
    /// <exception cref="ArgumentNullException">path or rowShape is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">dtype is not a defined DType.</exception>
    /// <exception cref="ArgumentException">An extent of rowShape is negative, or a row's byte count overflows.</exception>
    /// <exception cref="IOException">The file cannot be created.</exception>
    public NpyWriter(string path, DType dtype, params long[] rowShape)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(rowShape);
        int size = dtype.SizeOf();
        for (int i = 0; i < rowShape.Length; i++)
            if (rowShape[i] < 0) throw new ArgumentException($"rowShape[{i}] = {rowShape[i]}: extents must be >= 0", nameof(rowShape));
        try { _rowBytes = checked(Tensor.Product(rowShape) * size); }
        catch (OverflowException) { throw new ArgumentException($"rowShape [{string.Join(", ", rowShape)}] of {dtype} overflows a 64-bit byte count", nameof(rowShape)); }
        Path = path;
        DType = dtype;
        _rowShape = (long[])rowShape.Clone();
        _file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 1 << 20);
        try
        {
            byte[] header = Header(0, finished: false);
            _headerBytes = header.Length;
            _file.Write(header);
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    /// <summary>The file being written.</summary>
    public string Path { get; }

    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>The shape of one row.</summary>
    public IReadOnlyList<long> RowShape => _rowShape;

    /// <summary>Rows appended so far.</summary>
    public long Rows { get; private set; }

    /// <summary>
    /// Appends the rows of <paramref name="rows"/> ([k, ...rowShape], this writer's dtype, on any device) to the file,
    /// copying them in chunks of at most 16 MiB (device tensors through one staging block), so nothing the size of the
    /// batch is allocated. <c>k = 0</c> is allowed and writes nothing.
    /// </summary>
    /// <exception cref="ArgumentNullException">rows is null.</exception>
    /// <exception cref="ObjectDisposedException">This writer, or rows, was disposed.</exception>
    /// <exception cref="ArgumentException">rows has the wrong dtype or shape (nothing is written then).</exception>
    /// <exception cref="InvalidOperationException">An earlier Append failed part way: the file is left unfinished.</exception>
    /// <exception cref="IOException">Writing failed; the writer then refuses further rows and leaves the file unfinished.</exception>
    public void Append(Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ObjectDisposedException.ThrowIf(_disposed, this);
        ObjectDisposedException.ThrowIf(rows.IsDisposed, rows);
        if (_failed) throw new InvalidOperationException($"an earlier Append to {Path} failed part way; the file is left unfinished");
        if (rows.DType != DType) throw new ArgumentException($"rows is {rows.DType} but {Path} holds {DType}", nameof(rows));
        bool shapeOk = rows.Rank == _rowShape.Length + 1;
        for (int i = 0; shapeOk && i < _rowShape.Length; i++) shapeOk = rows.Shape[i + 1] == _rowShape[i];
        if (!shapeOk)
            throw new ArgumentException($"rows has shape [{string.Join(", ", rows.Shape)}] but {Path} takes [k, {string.Join(", ", _rowShape)}]", nameof(rows));

        DeviceBuffer buffer = rows.Buffer;
        long total = rows.ByteCount;
        byte[]? staging = rows.Device.Kind == DeviceKind.Cpu ? null : new byte[(int)Math.Min(total, StagingBytes)];
        try
        {
            for (long done = 0; done < total;)
            {
                int length = (int)Math.Min(StagingBytes, total - done);
                if (staging is null) _file.Write(Tensor.CpuBytes(buffer, done, length));
                else
                {
                    rows.Device.Backend.Read(buffer, done, staging.AsSpan(0, length));
                    _file.Write(staging, 0, length);
                }
                done += length;
            }
        }
        catch
        {
            _failed = true;
            throw;
        }
        Rows += rows.Shape[0];
    }

    /// <summary>
    /// Finishes the file: flushes the rows, writes the row count into the header, then NumPy's magic byte, and closes it.
    /// After a failed <see cref="Append"/> it only closes the file, which stays unfinished. Safe to call twice.
    /// </summary>
    /// <exception cref="IOException">Writing the header failed (the file then stays unfinished).</exception>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        using (_file)
        {
            if (_failed) return;
            _file.Flush();
            byte[] header = Header(Rows, finished: true);
            if (header.Length != _headerBytes) throw new InvalidOperationException($"npy header changed length ({_headerBytes} -> {header.Length})");
            // The count first, the magic byte last: the file claims to be a .npy only once everything else is in place.
            _file.Position = 1;
            _file.Write(header, 1, header.Length - 1);
            _file.Flush();
            _file.Position = 0;
            _file.WriteByte(header[0]);
            _file.Flush();
        }
    }

    /// <summary>The preamble, the dict and its newline, rounded up to a multiple of 64 bytes (NumPy's alignment of the data).</summary>
    private static int Aligned(int preamble, string dict) => (preamble + dict.Length + 1 + 63) / 64 * 64;

    /// <summary>Magic, version, length and the space-padded dict, a multiple of 64 bytes in all.</summary>
    private byte[] Header(long rows, bool finished)
    {
        string descr = DType switch
        {
            DType.Float32 => "<f4",
            DType.Float16 => "<f2",
            DType.BFloat16 => "<u2",
            DType.Int32 => "<i4",
            _ => "<i8",
        };
        string count = rows.ToString(CultureInfo.InvariantCulture).PadLeft(CountDigits);
        string shape = _rowShape.Length == 0
            ? $"({count},)"
            : $"({count}, {string.Join(", ", _rowShape.Select(e => e.ToString(CultureInfo.InvariantCulture)))})";
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        // Version 1.0 has a 16-bit length field; 2.0 the same header with a 32-bit one.
        int major = Aligned(10, dict) - 10 <= ushort.MaxValue ? 1 : 2;
        int preamble = major == 1 ? 10 : 12;
        int total = Aligned(preamble, dict);
        int dictLength = total - preamble;

        var bytes = new byte[total];
        bytes[0] = finished ? (byte)0x93 : NpyHeader.UnfinishedMagic;
        "NUMPY"u8.CopyTo(bytes.AsSpan(1));
        bytes[6] = (byte)major;
        bytes[7] = 0;
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)dictLength);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)dictLength);
        Span<byte> text = bytes.AsSpan(preamble);
        text.Fill((byte)' ');
        Encoding.Latin1.GetBytes(dict, text);
        text[^1] = (byte)'\n';
        return bytes;
    }
}
