namespace NativeTensor.Memory;

/// <summary>
/// The KV caches of a model's layers, all of one shape, dtype, mode and backing: <c>this[layer]</c> is layer's
/// <see cref="KvCache"/>. In a forward step each layer appends its own keys and values and reads its own range, so the
/// layers' lengths differ in the middle of a step and agree after it; <see cref="Length"/> is the positions every layer
/// holds. Each file-backed layer has its own nameless file (see <see cref="KvCache"/>). Not thread-safe as a whole;
/// different layers may be used from different threads.
/// </summary>
public sealed class MultiLayerKvCache : IDisposable
{
    private readonly KvCache[] _layers;
    private bool _disposed;

    /// <summary>Allocates <paramref name="layers"/> empty caches as <see cref="KvCache(int, int, int, DType, string?, bool, Device?)"/> does.</summary>
    /// <param name="layers">Layers, at least 1.</param>
    /// <param name="heads">Key/value heads per layer, at least 1.</param>
    /// <param name="capacity">Positions held per layer (the window W of a ring), at least 1.</param>
    /// <param name="headDim">Elements per head and position, at least 1.</param>
    /// <param name="dtype">Float32, Float16 or BFloat16.</param>
    /// <param name="backingDirectory">An existing directory for the layers' backing files, or null for memory.</param>
    /// <param name="ring">Sliding-window caches of window <paramref name="capacity"/>.</param>
    /// <param name="device">Where memory-backed caches live; null is the CPU.</param>
    /// <exception cref="ArgumentOutOfRangeException">layers, heads, capacity or headDim is less than 1.</exception>
    /// <exception cref="ArgumentException">As for <see cref="KvCache"/>, or the total byte count of all layers overflows 64 bits.</exception>
    /// <exception cref="DirectoryNotFoundException">backingDirectory does not exist.</exception>
    /// <exception cref="IOException">A backing file could not be created, sized or mapped.</exception>
    /// <exception cref="NativeTensorException">The device is out of memory.</exception>
    /// <remarks>Every rule is checked before the first layer is allocated; if a layer's allocation fails, the layers already made are disposed.</remarks>
    public MultiLayerKvCache(int layers, int heads, int capacity, int headDim, DType dtype, string? backingDirectory = null, bool ring = false,
        Device? device = null)
        : this(Checked(layers, heads, capacity, headDim, dtype, backingDirectory, device), () => new KvCache(heads, capacity, headDim, dtype, backingDirectory, ring, device))
    {
    }

    /// <summary>Makes <paramref name="layers"/> layers with <paramref name="makeLayer"/>, disposing those made if one fails (a test can inject the failure).</summary>
    internal MultiLayerKvCache(int layers, Func<KvCache> makeLayer)
    {
        _layers = new KvCache[layers];
        int made = 0;
        try
        {
            for (; made < layers; made++)
                _layers[made] = makeLayer();
        }
        catch
        {
            for (int i = 0; i < made; i++) _layers[i].Dispose();
            throw;
        }
    }

    /// <summary>Checks every rule of the public constructor before any layer is made; returns layers.</summary>
    private static int Checked(int layers, int heads, int capacity, int headDim, DType dtype, string? backingDirectory, Device? device)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        long store = KvCache.StoreBytes(heads, capacity, headDim, dtype, backingDirectory, device);
        try { _ = checked(2 * store * layers); }
        catch (OverflowException)
        {
            throw new ArgumentException($"{layers} layers of {2 * store:N0} bytes overflow a 64-bit byte count", nameof(layers));
        }
        return layers;
    }

    /// <summary>The number of layers.</summary>
    public int Layers => _layers.Length;

    /// <summary>Layer <paramref name="layer"/>'s cache.</summary>
    /// <exception cref="ArgumentOutOfRangeException">layer is not in [0, Layers).</exception>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    public KvCache this[int layer]
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if ((uint)layer >= (uint)_layers.Length)
                throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in [0, {_layers.Length})");
            return _layers[layer];
        }
    }

    /// <summary>
    /// Positions every layer holds: the least of the layers' <see cref="KvCache.Length"/>s, which all equal it between
    /// forward steps (a layer ahead of the others is in the middle of one).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    public long Length
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long least = long.MaxValue;
            foreach (KvCache layer in _layers) least = Math.Min(least, layer.Length);
            return least;
        }
    }

    /// <summary>Bytes of storage of all layers: <c>Layers</c> times <see cref="KvCache.ByteCount"/>.</summary>
    public long ByteCount => _layers.Length * _layers[0].ByteCount;

    /// <summary>Forgets every position of every layer (O(layers), storage untouched).</summary>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    public void Clear()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (KvCache layer in _layers) layer.Clear();
    }

    /// <summary>Disposes every layer (freeing memory, unmapping and deleting files). Safe to call more than once.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (KvCache layer in _layers) layer.Dispose();
    }
}
