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
/// <para>The rows go to a sibling file, <c>&lt;path&gt;.partial-&lt;id&gt;</c>, which <see cref="Dispose"/> renames over
/// <see cref="Path"/> once its header is final. The rename is atomic: a reader never sees a half-written file at
/// the path, and one that still has the old file open or mapped (<see cref="MappedTensor.OpenNpy"/>) keeps reading the
/// old bytes instead of having them truncated underneath it.</para>
/// <para>The header is written first with room for a 20-digit row count (padded with spaces inside the shape tuple,
/// which Python's literal syntax allows), so fixing it up never changes its length; the whole preamble is a multiple of
/// 64 bytes, as NumPy writes it. Rows have at most 63 axes (a file at most 64), NumPy 2's limit; NumPy 1.x reads up to 32.
/// The header then always fits format 1.0. BFloat16 is written as <c>&lt;u2</c> (NumPy has no bfloat16): open it with
/// <c>storedAs: DType.BFloat16</c>.</para>
/// <para>A writer whose <see cref="Append"/> failed deletes its partial file at <see cref="Dispose"/>; one never disposed
/// (or whose process died) leaves it behind, with a first byte of 0x00 instead of NumPy's magic 0x93 and a shape of 0
/// rows, which <c>np.load</c> refuses and <see cref="MappedTensor.OpenNpy"/> refuses naming it an unfinished NpyWriter
/// file.</para>
/// <para>Crash consistency: if the process dies at any point, <see cref="Path"/> holds either the file it held before
/// or the complete new one. The new file is flushed to the operating system before the rename but not synced to the
/// disk (no fsync, which would wait for gigabytes of writeback): after a power loss or kernel crash the file at the
/// path may be the new one with some of its data missing.</para>
/// <para>Not thread-safe: one thread appends at a time.</para>
/// </remarks>
public sealed class NpyWriter : IDisposable
{
    private const int CountDigits = 20;
    private const int StagingBytes = 16 << 20;

    /// <summary>NumPy 2's limit on the axes of an array (NPY_MAXDIMS); the readers refuse more too.</summary>
    internal const int MaxRank = 64;

    private readonly FileStream _file;
    private readonly string _partialPath;
    private readonly long[] _rowShape;
    private readonly int _headerBytes;
    private byte[]? _staging;
    private bool _failed;
    private bool _disposed;

    /// <summary>Creates (or replaces) <paramref name="path"/> for rows of <paramref name="rowShape"/> elements of <paramref name="dtype"/>.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="dtype">The element type; Float32 <c>&lt;f4</c>, Float16 <c>&lt;f2</c>, Int32 <c>&lt;i4</c>, Int64 <c>&lt;i8</c>, BFloat16 <c>&lt;u2</c>.</param>
    /// <param name="rowShape">The shape of one row (empty: the file is 1-D, one element per row).</param>
    /// <exception cref="ArgumentNullException">path or rowShape is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">dtype is not a defined DType.</exception>
    /// <exception cref="ArgumentException">An extent of rowShape is negative, rowShape has more than 63 axes, or a row's byte count overflows.</exception>
    /// <exception cref="IOException">The partial file cannot be created next to path.</exception>
    public NpyWriter(string path, DType dtype, params long[] rowShape)
        : this(path, dtype, rowShape, partial => new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 1 << 20))
    {
    }

    /// <summary>As the public constructor, with <paramref name="openPartial"/> opening the stream the rows go to (tests point it at <c>/dev/full</c>).</summary>
    internal NpyWriter(string path, DType dtype, long[] rowShape, Func<string, FileStream> openPartial)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(rowShape);
        int size = dtype.SizeOf();
        if (rowShape.Length + 1 > MaxRank)
            throw new ArgumentException($"rowShape has {rowShape.Length} axes: a .npy array has at most {MaxRank} (NumPy 1.x reads at most 32)", nameof(rowShape));
        for (int i = 0; i < rowShape.Length; i++)
            if (rowShape[i] < 0) throw new ArgumentException($"rowShape[{i}] = {rowShape[i]}: extents must be >= 0", nameof(rowShape));
        try { _ = checked(Tensor.Product(rowShape) * size); }
        catch (OverflowException) { throw new ArgumentException($"rowShape [{string.Join(", ", rowShape)}] of {dtype} overflows a 64-bit byte count", nameof(rowShape)); }
        Path = path;
        DType = dtype;
        _rowShape = (long[])rowShape.Clone();
        _partialPath = $"{System.IO.Path.GetFullPath(path)}.partial-{Guid.NewGuid():N}";
        _file = openPartial(_partialPath);
        try
        {
            byte[] header = Header(0, finished: false);
            _headerBytes = header.Length;
            _file.Write(header);
        }
        catch
        {
            DisposeQuietly(_file);
            DeleteQuietly(_partialPath);
            throw;
        }
    }

    /// <summary>The file being written: it appears, complete, at <see cref="Dispose"/>.</summary>
    public string Path { get; }

    /// <summary>Where the rows go until <see cref="Dispose"/> renames the file over <see cref="Path"/>.</summary>
    internal string PartialPath => _partialPath;

    /// <summary>The stream to the partial file, for tests that flush it to inspect the partial file.</summary>
    internal FileStream Stream => _file;

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
        byte[]? staging = rows.Device.Kind == DeviceKind.Cpu || total == 0 ? null : _staging ??= new byte[StagingBytes];
        // Held while its bytes are read in place, so a Dispose of rows on another thread cannot free them mid-write.
        using var hold = new Lease(buffer);
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
    /// Finishes the file: flushes the rows, writes the row count into the header, then NumPy's magic byte, closes it and
    /// renames it over <see cref="Path"/>. After a failed <see cref="Append"/> it deletes the partial file instead, without
    /// throwing again. Safe to call twice.
    /// </summary>
    /// <exception cref="IOException">Writing the header or the rename failed (the partial file is then deleted).</exception>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_failed)
        {
            // The stream may still hold the bytes whose write failed, and would fail again flushing them.
            DisposeQuietly(_file);
            DeleteQuietly(_partialPath);
            return;
        }
        try
        {
            Finish();
            File.Move(_partialPath, Path, overwrite: true);
        }
        catch
        {
            DisposeQuietly(_file);
            DeleteQuietly(_partialPath);
            throw;
        }
    }

    private void Finish()
    {
        using (_file)
        {
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
        // Format 1.0: a 16-bit length field, which at most 64 axes of at most 20 digits each always fit.
        const int Preamble = 10;
        int total = Aligned(Preamble, dict);
        int dictLength = total - Preamble;

        var bytes = new byte[total];
        bytes[0] = finished ? (byte)0x93 : NpyHeader.UnfinishedMagic;
        "NUMPY"u8.CopyTo(bytes.AsSpan(1));
        bytes[6] = 1;
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), checked((ushort)dictLength));
        Span<byte> text = bytes.AsSpan(Preamble);
        text.Fill((byte)' ');
        Encoding.Latin1.GetBytes(dict, text);
        text[^1] = (byte)'\n';
        return bytes;
    }

    /// <summary>Closes the stream after a failure, whose buffered bytes would fail again on the way out.</summary>
    private static void DisposeQuietly(FileStream file)
    {
        try { file.Dispose(); }
        catch (IOException) { }
    }

    /// <summary>Removes a partial file after a failure; the failure itself is what the caller hears about.</summary>
    private static void DeleteQuietly(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
