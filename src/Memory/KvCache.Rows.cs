using NativeTensor.Cpu;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Cpu;

namespace NativeTensor.Memory;

/// <summary>The argument rules and the per-head copies between the cache's stores and the tensors given to it.</summary>
public sealed partial class KvCache
{
    /// <summary>Bytes one store (keys or values) needs, after checking every constructor rule.</summary>
    internal static long StoreBytes(int heads, int capacity, int headDim, DType dtype, string? backingDirectory, Device? device)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        if (!Precision.IsFloatingPoint(dtype))
            throw new ArgumentException($"dtype = {dtype}: a KV cache holds Float32, Float16 or BFloat16", nameof(dtype));
        if (backingDirectory is not null)
        {
            if (backingDirectory.Length == 0)
                throw new ArgumentException("backingDirectory is empty: pass an existing directory, or null for a memory-backed cache", nameof(backingDirectory));
            if (device is not null && device.Kind != DeviceKind.Cpu)
                throw new ArgumentException(
                    $"device = {device.Spec} with backingDirectory '{backingDirectory}': a file-backed cache lives in host memory (pass no device, or no directory)", nameof(device));
        }
        try
        {
            // Both stores together must fit a 64-bit byte count, not only one.
            long store = checked((long)heads * capacity * headDim * dtype.SizeOf());
            _ = checked(2 * store);
            return store;
        }
        catch (OverflowException)
        {
            throw new ArgumentException(
                $"heads {heads} x capacity {capacity} x headDim {headDim} x {dtype.SizeOf()} bytes x 2 (keys and values) overflows a 64-bit byte count", nameof(capacity));
        }
    }

    /// <summary>Checks an appended block [Heads, t, HeadDim] of a floating-point dtype; returns t.</summary>
    private long CheckBlock(Tensor block, string name, long? expectedT)
    {
        ArgumentNullException.ThrowIfNull(block, name);
        ObjectDisposedException.ThrowIf(block.IsDisposed, block);
        if (block.Rank != 3 || block.Shape[0] != Heads || block.Shape[2] != HeadDim)
            throw new ArgumentException(
                $"{name} has shape [{string.Join(", ", block.Shape)}]: a block is [heads {Heads}, t, headDim {HeadDim}]", name);
        if (!Precision.IsFloatingPoint(block.DType))
            throw new ArgumentException($"{name} is {block.DType}: keys and values are Float32, Float16 or BFloat16 (converted to {DType})", name);
        long t = block.Shape[1];
        if (expectedT is long keysT && t != keysT)
            throw new ArgumentException($"{name} holds {t} positions but keys hold {keysT}: both must append the same positions", name);
        return t;
    }

    /// <summary>Checks that [start, start + length) is held.</summary>
    private void CheckRange(long start, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long first = FirstHeld;
        if (start < first || start > _length - length)
        {
            string held = _length == first ? "none (the cache is empty)" : $"[{first}, {_length})";
            string evicted = IsRing && start < first ? $"; positions before {first} were evicted from the window of {Capacity}" : "";
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"positions [{start}, {start} + {length}) are not all held: the cache holds {held}{evicted}");
        }
    }

    /// <summary>Checks a caller's tensor for <see cref="Read(long, int, Tensor, Tensor)"/>.</summary>
    private void CheckDestination(Tensor destination, string name, int length)
    {
        ArgumentNullException.ThrowIfNull(destination, name);
        ObjectDisposedException.ThrowIf(destination.IsDisposed, destination);
        destination.RequireWritable(name);
        if (destination.DType != DType)
            throw new ArgumentException($"{name} is {destination.DType} but the cache holds {DType}: read, then Precision.Convert", name);
        if (destination.Rank != 3 || destination.Shape[0] != Heads || destination.Shape[1] != length || destination.Shape[2] != HeadDim)
            throw new ArgumentException(
                $"{name} has shape [{string.Join(", ", destination.Shape)}]: reading {length} positions needs [{Heads}, {length}, {HeadDim}]", name);
    }

    /// <summary>
    /// The block ready for <see cref="WriteRows"/>: itself when it is in the cache's dtype, or when both it and the cache
    /// are in host memory (the rows are then converted straight into the store, in one pass); else a converted copy (the
    /// caller disposes it), converted on whichever side makes the cross-device copy smaller: narrowing where the block
    /// is, widening on the cache's device.
    /// </summary>
    private Tensor Staged(Tensor block)
    {
        if (block.DType == DType || (block.Device.Kind == DeviceKind.Cpu && Device.Kind == DeviceKind.Cpu)) return block;
        if (DType.SizeOf() <= block.DType.SizeOf() || block.Device == Device) return Precision.Convert(block, DType);
        using Tensor moved = block.To(Device);
        return Precision.Convert(moved, DType);
    }

    /// <summary>
    /// Writes rows [skip, t) of each head of <paramref name="block"/> ([Heads, t, HeadDim]) to positions
    /// <paramref name="position"/> onwards of <paramref name="store"/>: per head one copy, or two where the ring wraps.
    /// </summary>
    private void WriteRows(Tensor block, Tensor store, long t, long skip, long position)
    {
        int rows = (int)(t - skip);
        (int slot, int first) = Slots(position, rows);
        for (long h = 0; h < Heads; h++)
        {
            long from = h * t + skip, to = h * Capacity;
            PutRows(block, from, store, to + slot, first);
            PutRows(block, from + first, store, to, rows - first);
        }
    }

    /// <summary>
    /// Rows [from, from + rows) of a block, as rows of the same count at row <paramref name="to"/> of a store: copied
    /// when the dtypes agree, else (both in host memory, see <see cref="Staged"/>) converted by the CPU kernels of
    /// <see cref="Precision.Convert"/>, with the vector width of the block's device.
    /// </summary>
    private unsafe void PutRows(Tensor block, long from, Tensor store, long to, int rows)
    {
        if (block.DType == DType)
        {
            Tensor.CopyBytes(block, from * _rowBytes, store, to * _rowBytes, rows * _rowBytes);
            return;
        }
        if (rows == 0) return;
        long elements = (long)rows * HeadDim;
        using var reading = new Lease(block.Buffer);
        using var writing = new Lease(store.Buffer);
        byte* source = (byte*)reading.Pointer + from * HeadDim * block.DType.SizeOf();
        byte* destination = (byte*)writing.Pointer + to * _rowBytes;
        PrecisionKernels.Convert(source, block.DType, destination, DType, elements, ((CpuBackend)block.Device.Backend).Simd);
    }

    /// <summary>Reads positions [start, start + length) of each head of <paramref name="store"/> into <paramref name="output"/> [Heads, length, HeadDim].</summary>
    private void ReadRows(Tensor store, Tensor output, long start, int length)
    {
        (int slot, int first) = Slots(start, length);
        for (long h = 0; h < Heads; h++)
        {
            long from = h * Capacity * _rowBytes, to = h * length * _rowBytes;
            Tensor.CopyBytes(store, from + slot * _rowBytes, output, to, first * _rowBytes);
            Tensor.CopyBytes(store, from, output, to + first * _rowBytes, (length - first) * _rowBytes);
        }
    }

    /// <summary>
    /// Where <paramref name="rows"/> positions from <paramref name="position"/> sit: the slot of the first, and how many
    /// fit before the end of the store (the rest wrap to slot 0; none do in a linear cache, whose ranges were checked).
    /// </summary>
    private (int Slot, int First) Slots(long position, int rows)
    {
        int slot = (int)(IsRing ? position % Capacity : position);
        return (slot, Math.Min(rows, Capacity - slot));
    }

}
