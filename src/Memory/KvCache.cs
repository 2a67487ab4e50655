using NativeTensor.Memory.Files;

namespace NativeTensor.Memory;

/// <summary>
/// One attention layer's cache of keys and values: two stores of [<see cref="Heads"/>, <see cref="Capacity"/>,
/// <see cref="HeadDim"/>] elements of <see cref="DType"/> (Float32, Float16 or BFloat16), to which a decoder appends the
/// keys and values of each new token (<see cref="Append"/>) and from which attention reads any held range of positions
/// (<see cref="Read(long, int)"/>). Positions are absolute: 0 is the first position ever appended, and
/// <see cref="Length"/> is how many have been appended since construction or <see cref="Clear"/>.
/// </summary>
/// <remarks>
/// <para>
/// <b>Where it lives.</b> In memory on <see cref="Device"/> (host memory by default; a device such as a GPU keeps the whole
/// cache there), or, with a backing directory, in a memory-mapped scratch file on the host which has no name once the
/// constructor returns (see <see cref="BackingPath"/>): it is deleted on <see cref="Dispose"/> and also when the
/// process dies, even by <c>kill -9</c>, because the kernel frees an unlinked file when its last descriptor and mapping
/// go. Pages of a file-backed cache are written back to disk and evicted by the kernel under memory pressure, so a
/// cache larger than RAM works, at the disk's speed.
/// </para>
/// <para>
/// <b>Two modes.</b> Linear (the default): positions [0, <see cref="Capacity"/>) are held, and an append past the
/// capacity is refused. Ring (<c>ring: true</c>, for sliding-window attention with window W = <see cref="Capacity"/>):
/// the last W positions are held, position p in slot <c>p mod W</c>, and older ones are overwritten, so memory stays
/// <see cref="ByteCount"/> however long the sequence grows. <see cref="WindowStart"/> is the first position still held.
/// </para>
/// <para>
/// <b>Lifetime.</b> <see cref="Dispose"/> frees the storage at once; a cache never disposed is freed later, by the
/// finalisers of its memory, mapping and file handles.
/// </para>
/// <para>
/// <b>Threads.</b> Not thread-safe: one thread appends and reads at a time (a decoder's step). Different caches
/// (e.g. the layers of a <see cref="MultiLayerKvCache"/>) may be used from different threads.
/// </para>
/// </remarks>
public sealed partial class KvCache : IDisposable
{
    private readonly Tensor _keys;
    private readonly Tensor _values;
    private readonly TemporaryBacking? _backing;
    private readonly long _rowBytes;
    private long _length;
    private bool _disposed;

    /// <summary>Allocates an empty cache (contents undefined until appended).</summary>
    /// <param name="heads">Key/value heads, at least 1.</param>
    /// <param name="capacity">Positions held: the most a linear cache takes, the window W of a ring; at least 1.</param>
    /// <param name="headDim">Elements per head and position, at least 1.</param>
    /// <param name="dtype">Float32, Float16 or BFloat16.</param>
    /// <param name="backingDirectory">
    /// An existing directory in which to create the backing file, or null to keep the cache in memory. The file is
    /// <c>2 heads capacity headDim sizeof(dtype)</c> bytes, with every block reserved at creation (a disk too small is an <see cref="IOException"/> here, not a fault at a later append).
    /// </param>
    /// <param name="ring">Keep only the last <paramref name="capacity"/> positions (sliding window) instead of refusing to grow.</param>
    /// <param name="device">Where a memory-backed cache lives; null is <see cref="NativeTensor.Device.Cpu"/>. A file-backed cache is always on the CPU.</param>
    /// <exception cref="ArgumentOutOfRangeException">heads, capacity or headDim is less than 1.</exception>
    /// <exception cref="ArgumentException">dtype is not a floating-point dtype; the byte count overflows 64 bits; backingDirectory is empty or given with a non-CPU device.</exception>
    /// <exception cref="DirectoryNotFoundException">backingDirectory does not exist.</exception>
    /// <exception cref="IOException">The backing file could not be created, sized or mapped.</exception>
    /// <exception cref="NativeTensorException">The device is out of memory.</exception>
    public KvCache(int heads, int capacity, int headDim, DType dtype, string? backingDirectory = null, bool ring = false, Device? device = null)
    {
        long storeBytes = StoreBytes(heads, capacity, headDim, dtype, backingDirectory, device);
        Heads = heads;
        Capacity = capacity;
        HeadDim = headDim;
        DType = dtype;
        IsRing = ring;
        _rowBytes = (long)headDim * dtype.SizeOf();
        long[] shape = [heads, capacity, headDim];
        if (backingDirectory is null)
        {
            Device = device ?? Device.Cpu;
            _keys = Tensor.Empty(dtype, shape, Device);
            try { _values = Tensor.Empty(dtype, shape, Device); }
            catch
            {
                _keys.Dispose();
                throw;
            }
            return;
        }
        Device = Device.Cpu;
        _backing = TemporaryBacking.Create(backingDirectory, "kvcache", 2 * storeBytes);
        try
        {
            _keys = Tensor.ViewOfHostMemory(dtype, shape, _backing.Owner, _backing.Length, 0, readOnly: false);
            _values = Tensor.ViewOfHostMemory(dtype, shape, _backing.Owner, _backing.Length, storeBytes, readOnly: false);
        }
        catch
        {
            _keys?.Dispose();
            _backing.Dispose();
            throw;
        }
    }

    /// <summary>Key/value heads.</summary>
    public int Heads { get; }

    /// <summary>Positions held: the limit of a linear cache, the window W of a ring.</summary>
    public int Capacity { get; }

    /// <summary>Elements per head and position.</summary>
    public int HeadDim { get; }

    /// <summary>The element type of the stored keys and values.</summary>
    public DType DType { get; }

    /// <summary>Whether this is a ring (sliding window) cache.</summary>
    public bool IsRing { get; }

    /// <summary>Where the keys and values live (the CPU for a file-backed cache).</summary>
    public Device Device { get; }

    /// <summary>Positions appended since construction or <see cref="Clear"/> (in a ring, including evicted ones).</summary>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    public long Length
    {
        get
        {
            ThrowIfDisposed();
            return _length;
        }
    }

    /// <summary>The first position still held: <c>max(0, Length - Capacity)</c> in a ring, else 0.</summary>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    public long WindowStart
    {
        get
        {
            ThrowIfDisposed();
            return FirstHeld;
        }
    }

    /// <summary>Bytes of storage: <c>2 Heads Capacity HeadDim sizeof(DType)</c>, fixed for the cache's life.</summary>
    public long ByteCount => 2 * _keys.ByteCount;

    /// <summary>
    /// The name the backing file was created under, or null for a memory-backed cache. On Unix the name was removed
    /// before the constructor returned (the file lives on, nameless, until <see cref="Dispose"/>); on Windows the file
    /// exists under this name, opened delete-on-close.
    /// </summary>
    public string? BackingPath => _backing?.Path;

    /// <summary>The backing file's length as the file system reports it now; a test's proof that it never grows.</summary>
    internal long? BackingFileLength => _backing?.FileLength;

    /// <summary>
    /// Appends <c>t</c> positions: <c>keys[h, i, :]</c> and <c>values[h, i, :]</c> become position <c>Length + i</c> of
    /// head h, then <see cref="Length"/> grows by t. Inputs of another floating-point dtype are converted on the way in
    /// (rounded as <see cref="Precision.Convert"/> does); inputs on another device are copied across.
    /// </summary>
    /// <remarks>
    /// Host inputs of another dtype are converted straight into a host cache's storage, row range by row range, with no
    /// temporary; a device input of another dtype is converted into a temporary first, whole. In a ring, an append of
    /// t &gt; <see cref="Capacity"/> positions stores only its last Capacity rows (the earlier ones would be evicted by
    /// the same append). Every argument and the
    /// capacity are checked before anything is written. A device failure midway leaves <see cref="Length"/> unchanged
    /// but, in a ring, may have overwritten held positions.
    /// </remarks>
    /// <param name="keys">[<see cref="Heads"/>, t, <see cref="HeadDim"/>], t &gt;= 0, any floating-point dtype, any device.</param>
    /// <param name="values">As keys, with the same t.</param>
    /// <exception cref="ArgumentNullException">keys or values is null.</exception>
    /// <exception cref="ObjectDisposedException">The cache, keys or values was disposed.</exception>
    /// <exception cref="ArgumentException">A tensor is not rank 3, its heads or headDim differ from the cache's, the two t differ, or its dtype is not floating-point.</exception>
    /// <exception cref="InvalidOperationException">A linear cache would exceed its capacity: <c>Length + t &gt; Capacity</c>.</exception>
    public void Append(Tensor keys, Tensor values)
    {
        ThrowIfDisposed();
        long t = CheckBlock(keys, nameof(keys), null);
        CheckBlock(values, nameof(values), t);
        if (!IsRing && t > Capacity - _length)
            throw new InvalidOperationException(
                $"appending {t} positions to a cache holding {_length} of {Capacity} would need {_length + t}: the cache is full (use a larger capacity, or ring: true for a sliding window)");
        if (t == 0) return;
        Tensor keyRows = Staged(keys);
        Tensor? valueRows = null;
        try
        {
            valueRows = Staged(values);
            long skip = IsRing ? Math.Max(0, t - Capacity) : 0;
            WriteRows(keyRows, _keys, t, skip, _length + skip);
            WriteRows(valueRows, _values, t, skip, _length + skip);
            _length += t;
        }
        finally
        {
            if (!ReferenceEquals(keyRows, keys)) keyRows.Dispose();
            if (valueRows is not null && !ReferenceEquals(valueRows, values)) valueRows.Dispose();
        }
    }

    /// <summary>
    /// Copies positions [<paramref name="start"/>, start + <paramref name="length"/>) of every head into two new tensors
    /// [<see cref="Heads"/>, length, <see cref="HeadDim"/>] of <see cref="DType"/> on <see cref="Device"/>:
    /// <c>Keys[h, i, :]</c> is position start + i of head h.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// start or length is negative, or the range is not held: <c>WindowStart &lt;= start</c> and
    /// <c>start + length &lt;= Length</c> must both hold (in a ring, positions before WindowStart were evicted).
    /// </exception>
    public (Tensor Keys, Tensor Values) Read(long start, int length)
    {
        ThrowIfDisposed();
        CheckRange(start, length);
        long[] shape = [Heads, length, HeadDim];
        Tensor keys = Tensor.Empty(DType, shape, Device);
        Tensor? values = null;
        try
        {
            values = Tensor.Empty(DType, shape, Device);
            ReadRows(_keys, keys, start, length);
            ReadRows(_values, values, start, length);
            return (keys, values);
        }
        catch
        {
            keys.Dispose();
            values?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// As <see cref="Read(long, int)"/>, into tensors the caller owns (so a decode step allocates nothing): both
    /// [<see cref="Heads"/>, length, <see cref="HeadDim"/>] of <see cref="DType"/>, writable, on any device.
    /// </summary>
    /// <exception cref="ArgumentNullException">keys or values is null.</exception>
    /// <exception cref="ObjectDisposedException">The cache, keys or values was disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="Read(long, int)"/>.</exception>
    /// <exception cref="ArgumentException">keys or values has another shape or dtype, is read-only, or both are the same tensor.</exception>
    public void Read(long start, int length, Tensor keys, Tensor values)
    {
        ThrowIfDisposed();
        CheckRange(start, length);
        CheckDestination(keys, nameof(keys), length);
        CheckDestination(values, nameof(values), length);
        if (ReferenceEquals(keys, values))
            throw new ArgumentException("keys and values are the same tensor: read into two", nameof(values));
        ReadRows(_keys, keys, start, length);
        ReadRows(_values, values, start, length);
    }

    /// <summary>Forgets every position (<see cref="Length"/> becomes 0) without touching the storage; O(1).</summary>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    public void Clear()
    {
        ThrowIfDisposed();
        _length = 0;
    }

    /// <summary>
    /// Frees the storage now: device memory, or the mapping and the backing file (whose disk blocks the kernel then
    /// frees). Safe to call more than once; afterwards every other member except <see cref="ByteCount"/>,
    /// <see cref="BackingPath"/> and the shape properties throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _keys.Dispose();
        _values.Dispose();
        _backing?.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"KvCache({Heads} heads, {(IsRing ? "window" : "capacity")} {Capacity}, headDim {HeadDim}, {DType}, {(_backing is null ? Device.Spec : "file")}, length {_length})";

    private long FirstHeld => IsRing ? Math.Max(0, _length - Capacity) : 0;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
