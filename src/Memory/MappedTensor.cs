using System.Collections;
using NativeTensor.Memory.Files;
using NativeTensor.Runtime;

namespace NativeTensor.Memory;

/// <summary>
/// A tensor stored in a file (<c>.npy</c> or <c>.safetensors</c>) and read through a read-only memory map: <see cref="Tensor"/>
/// is a zero-copy view of the file's bytes on <see cref="Device.Cpu"/>, so opening costs the header's bytes and reading
/// a row faults in only that row's pages. Every op accepts it as an input and refuses it as an output.
/// </summary>
/// <remarks>
/// <para>Lifetime: <see cref="Dispose"/> disposes <see cref="Tensor"/> (after which any op on it throws
/// <see cref="ObjectDisposedException"/>) and releases this tensor's hold on the file's mapping. All the tensors of one
/// file share one mapping, unmapped exactly once, when the last of them is disposed, in any order. A span taken from
/// <see cref="Tensor"/>'s <c>AsReadOnlySpan</c> is valid only until then, as with any tensor.</para>
/// <para>Resident memory: pages a read maps in count in the process's RSS (as file pages, <c>RssFile</c>), but they
/// are clean page cache, which the kernel drops and re-reads under memory pressure instead of swapping, unlike frames
/// held in RAM. When the file is already cached the kernel also maps up to 64 KiB of cached neighbours around a faulting
/// page (fault-around), without any I/O; a read from a cold file reads only the pages it touches.</para>
/// <para>The file must not be truncated or rewritten while it is open: a mapped page whose bytes vanished faults the
/// process (SIGBUS), as with NumPy's memmap.</para>
/// </remarks>
public sealed class MappedTensor : IDisposable
{
    /// <summary>Default chunk of <see cref="To(Device, long)"/>: 64 MiB, large enough to stream at full bandwidth, small beside any machine's RAM.</summary>
    public const long DefaultChunkBytes = 64L << 20;

    private static readonly IReadOnlyDictionary<string, string> NoMetadata = System.Collections.Frozen.FrozenDictionary<string, string>.Empty;

    private readonly Tensor _tensor;
    private readonly SharedMapping _mapping;
    private int _disposed;

    private MappedTensor(string path, string? name, Tensor tensor, SharedMapping mapping, long byteOffset, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        Name = name;
        _tensor = tensor;
        _mapping = mapping;
        ByteOffset = byteOffset;
        Metadata = metadata;
    }

    /// <summary>The file, as it was passed to open it.</summary>
    public string Path { get; }

    /// <summary>The tensor's name in a <c>.safetensors</c> file; null for a <c>.npy</c> file.</summary>
    public string? Name { get; }

    /// <summary>The file's <c>__metadata__</c> strings (<c>.safetensors</c>); empty for <c>.npy</c> or when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Offset in the file of the tensor's first byte.</summary>
    public long ByteOffset { get; }

    /// <summary>The element type (for <c>&lt;u2</c> files, the <c>storedAs</c> they were opened with).</summary>
    public DType DType => _tensor.DType;

    /// <summary>The shape, C order.</summary>
    public IReadOnlyList<long> Shape => _tensor.Shape;

    /// <summary>Bytes of the tensor in the file: elements x element size.</summary>
    public long ByteCount => _tensor.ByteCount;

    /// <summary>True once <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The zero-copy, read-only (<see cref="Tensor.IsReadOnly"/>) view of the file's bytes on <see cref="Device.Cpu"/>; disposed with this.</summary>
    /// <exception cref="ObjectDisposedException">This was disposed.</exception>
    public Tensor Tensor
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _tensor;
        }
    }

    /// <summary>The mapping, for tests and benchmarks that ask which pages are resident.</summary>
    internal FileMapping Mapping => _mapping.Mapping;

    /// <summary>
    /// Opens a <c>.npy</c> file (format 1.0, 2.0 or 3.0; C order; little-endian <c>&lt;f4</c>, <c>&lt;f2</c>, <c>&lt;i4</c>,
    /// <c>&lt;i8</c>, and <c>&lt;u2</c> holding bfloat16 bits when <paramref name="storedAs"/> is <see cref="DType.BFloat16"/>).
    /// The header is read and checked with bounded reads before anything is mapped; the data range is then advised
    /// for random access (no read-ahead), so a gather faults in only the pages of the rows it reads.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="storedAs">The element type the caller expects; required (as BFloat16) for <c>&lt;u2</c>, else it must equal the file's.</param>
    /// <exception cref="ArgumentNullException">path is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">storedAs is not a defined DType.</exception>
    /// <exception cref="InvalidDataException">The file breaks a rule of the format or is not one NativeTensor reads: bad magic or version,
    /// a header past the end of the file, a header dict that is not exactly <c>{'descr', 'fortran_order', 'shape'}</c>, Fortran
    /// order, big-endian or unknown descr, <c>&lt;u2</c> without storedAs BFloat16, storedAs unlike the descr, a negative or
    /// overflowing shape, or data bytes other than shape x itemsize (short or long). The message names the file and the rule.</exception>
    /// <exception cref="IOException">The file cannot be opened or mapped (FileNotFoundException and the like), or the path is not a regular file (a directory, a FIFO, a device).</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read.</exception>
    public static MappedTensor OpenNpy(string path, DType? storedAs = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (storedAs is { } s) _ = s.SizeOf();
        using FileStream file = OpenForHeader(path);
        long length = file.Length;
        NpyHeader header = NpyHeader.Read(path, file.SafeFileHandle, length, storedAs);
        var mapping = new SharedMapping(FileMapping.Map(file, length, writable: false), users: 1);
        try
        {
            Tensor view = Tensor.ViewOfHostMemory(header.DType, header.Shape, mapping.Mapping.Owner, mapping.Mapping.Length, header.DataOffset, readOnly: true);
            mapping.Mapping.Advise(header.DataOffset, header.DataBytes, PageAdvice.Random);
            return new MappedTensor(path, null, view, mapping, header.DataOffset, NoMetadata);
        }
        catch
        {
            mapping.Release();
            throw;
        }
    }

    /// <summary>
    /// Opens every tensor of a <c>.safetensors</c> file (F32, F16, BF16, I32, I64), by name. They share one mapping of the
    /// file, advised for random access. The returned dictionary is also <see cref="IDisposable"/>: disposing it disposes
    /// every tensor in it (each may also be disposed alone). The file's <c>__metadata__</c> is every tensor's <see cref="Metadata"/>
    /// (and <see cref="ReadSafetensorsMetadata"/> reads it without mapping anything).
    /// </summary>
    /// <exception cref="ArgumentNullException">path is null.</exception>
    /// <exception cref="InvalidDataException">The file breaks a rule of the format: a header length past the file or over
    /// 100,000,000 bytes, JSON that is invalid (or not UTF-8) or has a key twice, a tensor without a string dtype, integer shape
    /// and [begin, end] data_offsets, an unsupported dtype, begin &gt; end, a size other than shape x itemsize, offsets past
    /// the buffer, tensors that overlap or leave a gap or trailing bytes. The message names the file, the tensor and the rule.</exception>
    /// <exception cref="IOException">The file cannot be opened or mapped, or the path is not a regular file (a directory, a FIFO, a device).</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be read.</exception>
    public static IReadOnlyDictionary<string, MappedTensor> OpenSafetensors(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using FileStream file = OpenForHeader(path);
        long length = file.Length;
        SafetensorsHeader header = SafetensorsHeader.Read(path, file.SafeFileHandle, length);
        var opened = new Dictionary<string, MappedTensor>(StringComparer.Ordinal);
        if (header.Tensors.Count == 0) return new TensorDictionary(opened); // nothing to map
        var mapping = new SharedMapping(FileMapping.Map(file, length, writable: false), users: header.Tensors.Count);
        try
        {
            mapping.Mapping.Advise(header.DataOffset, length - header.DataOffset, PageAdvice.Random);
            foreach (SafetensorsEntry entry in header.Tensors)
            {
                long offset = header.DataOffset + entry.Begin;
                Tensor view = Tensor.ViewOfHostMemory(entry.DType, entry.Shape, mapping.Mapping.Owner, mapping.Mapping.Length, offset, readOnly: true);
                opened.Add(entry.Name, new MappedTensor(path, entry.Name, view, mapping, offset, header.Metadata));
            }
            return new TensorDictionary(opened);
        }
        catch
        {
            // Each tensor opened releases its own hold; the holds of those never made are released here.
            foreach (MappedTensor t in opened.Values) t.Dispose();
            for (int i = opened.Count; i < header.Tensors.Count; i++) mapping.Release();
            throw;
        }
    }

    /// <summary>The <c>__metadata__</c> strings of a <c>.safetensors</c> file, after validating its whole header; nothing is mapped.</summary>
    /// <exception cref="InvalidDataException">As <see cref="OpenSafetensors"/>.</exception>
    public static IReadOnlyDictionary<string, string> ReadSafetensorsMetadata(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using FileStream file = OpenForHeader(path);
        return SafetensorsHeader.Read(path, file.SafeFileHandle, file.Length).Metadata;
    }

    /// <summary>
    /// A copy on <paramref name="device"/> (the CPU included), streamed in chunks of at most <paramref name="chunkBytes"/>:
    /// the next chunk is advised for sequential read-ahead and each copied chunk is dropped from this process
    /// (<c>madvise DONTNEED</c>; its page stays in the page cache), so the file adds about one chunk to resident memory
    /// however large it is. Afterwards the range is advised for random access again.
    /// </summary>
    /// <exception cref="ArgumentNullException">device is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">chunkBytes &lt; 1.</exception>
    /// <exception cref="ObjectDisposedException">This was disposed.</exception>
    /// <exception cref="NativeTensorException">The device is out of memory.</exception>
    public Tensor To(Device device, long chunkBytes = DefaultChunkBytes) => To(device, chunkBytes, probe: null);

    /// <summary>
    /// As the public overload; <paramref name="probe"/> (a test's) runs twice per chunk with the bytes copied so far: once
    /// after the copy, while the chunk is still resident (false), and once after it was dropped (true).
    /// </summary>
    internal Tensor To(Device device, long chunkBytes, Action<long, bool>? probe)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1);
        DeviceBuffer from = Tensor.Buffer;
        Tensor result = Tensor.Empty(DType, Shape, device);
        // A span holds at most 2 GiB; a chunk is a whole number of elements so no element straddles two writes.
        int size = DType.SizeOf();
        long chunk = Math.Max(size, Math.Min(chunkBytes, int.MaxValue) / size * size);
        // Held for the copy: a Dispose on another thread then waits to unmap until the copy is done.
        bool held = false;
        try
        {
            from.DangerousAddRef(ref held);
            long total = ByteCount;
            for (long done = 0; done < total;)
            {
                int length = (int)Math.Min(chunk, total - done);
                long ahead = Math.Min(chunk, total - done - length);
                // Read-ahead for this chunk and the next; the next one's reads start now, while this one is copied.
                Mapping.Advise(ByteOffset + done, length + ahead, PageAdvice.Sequential);
                Mapping.Advise(ByteOffset + done + length, ahead, PageAdvice.WillNeed);
                device.Backend.Write(result.Buffer, done, Tensor.CpuBytes(from, done, length));
                probe?.Invoke(done + length, false);
                Mapping.Advise(ByteOffset + done, length, PageAdvice.DontNeed);
                done += length;
                probe?.Invoke(done, true);
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
        finally
        {
            if (held)
            {
                Mapping.Advise(ByteOffset, ByteCount, PageAdvice.Random);
                from.DangerousRelease();
            }
        }
    }

    /// <summary>Disposes <see cref="Tensor"/> and releases this tensor's hold on the file's mapping. Safe to call twice.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _tensor.Dispose();
        _mapping.Release();
    }

    /// <inheritdoc/>
    public override string ToString() => $"MappedTensor({Path}{(Name is null ? "" : $" '{Name}'")}, {DType}, [{string.Join(", ", _tensor.Shape)}])";

    /// <summary>Opened for the header reads only (random access: no read-ahead pulls the data into the page cache).</summary>
    private static FileStream OpenForHeader(string path) => FileBytes.OpenRegular(path);

    /// <summary>One file's mapping, disposed when the last <see cref="MappedTensor"/> using it is (views may keep the pages mapped a little longer).</summary>
    private sealed class SharedMapping(FileMapping mapping, int users)
    {
        private int _users = users;

        public FileMapping Mapping { get; } = mapping;

        public void Release()
        {
            if (Interlocked.Decrement(ref _users) == 0) Mapping.Dispose();
        }
    }

    /// <summary>The tensors of one <c>.safetensors</c> file; disposing it disposes them all.</summary>
    private sealed class TensorDictionary(Dictionary<string, MappedTensor> tensors) : IReadOnlyDictionary<string, MappedTensor>, IDisposable
    {
        public MappedTensor this[string key] => tensors[key];
        public IEnumerable<string> Keys => tensors.Keys;
        public IEnumerable<MappedTensor> Values => tensors.Values;
        public int Count => tensors.Count;
        public bool ContainsKey(string key) => tensors.ContainsKey(key);
        public bool TryGetValue(string key, out MappedTensor value) => tensors.TryGetValue(key, out value!);
        public IEnumerator<KeyValuePair<string, MappedTensor>> GetEnumerator() => tensors.GetEnumerator();
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        public void Dispose()
        {
            foreach (MappedTensor tensor in tensors.Values) tensor.Dispose();
        }
    }
}
