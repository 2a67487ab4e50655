using System.Runtime.InteropServices;
using NativeTensor.Runtime;

namespace NativeTensor;

/// <summary>
/// A dense, row-major (C-order) array of one <see cref="DType"/> in one device's memory. A tensor owns its
/// buffer: <see cref="Dispose"/> frees it at once (a finaliser frees it too, as a last resort). A view of memory that
/// something else owns (a mapped file's tensor) releases its hold on that owner instead, which frees the memory once
/// its last view is gone.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly long[] _shape;
    private readonly DeviceBuffer _buffer;

    private Tensor(DType dtype, long[] shape, Device device, DeviceBuffer buffer, bool readOnly = false)
    {
        DType = dtype;
        _shape = shape;
        Device = device;
        _buffer = buffer;
        IsReadOnly = readOnly;
    }

    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>The extent of each axis, outermost first.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>The number of axes.</summary>
    public int Rank => _shape.Length;

    /// <summary>Where the data lives.</summary>
    public Device Device { get; }

    /// <summary>The product of <see cref="Shape"/> (1 for a rank-0 tensor).</summary>
    public long ElementCount => Product(_shape);

    /// <summary><see cref="ElementCount"/> times the element size.</summary>
    public long ByteCount => ElementCount * DType.SizeOf();

    /// <summary>
    /// True for a view of memory this process may only read (a memory-mapped file opened read-only): every op refuses
    /// it as an output, <see cref="CopyFrom{T}"/> and <see cref="AsSpan{T}"/> throw, and <see cref="AsReadOnlySpan{T}"/>
    /// is the way to its elements in place.
    /// </summary>
    public bool IsReadOnly { get; }

    /// <summary>True once <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => _buffer.IsClosed;

    /// <summary>The buffer, for ops; throws when the tensor was disposed.</summary>
    internal DeviceBuffer Buffer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _buffer;
        }
    }

    /// <summary>Copies <paramref name="data"/> into a new tensor on <see cref="Device.Cpu"/>.</summary>
    /// <param name="data">The elements in row-major order.</param>
    /// <param name="shape">The shape; when omitted, <c>[data.Length]</c>.</param>
    /// <exception cref="ArgumentException">The shape's product is not <c>data.Length</c>, an extent is negative, or <typeparamref name="T"/> has no DType.</exception>
    public static Tensor FromArray<T>(T[] data, params long[] shape) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(data);
        DType dtype = DTypes.Of<T>();
        if (shape.Length == 0) shape = [data.Length];
        long[] checkedShape = CheckShape(shape);
        if (Product(checkedShape) != data.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {Product(checkedShape)} elements but data has {data.Length}", nameof(shape));
        Tensor tensor = Allocate(dtype, checkedShape, Device.Cpu);
        tensor.CopyFrom<T>(data);
        return tensor;
    }

    /// <summary>A new tensor whose contents are undefined.</summary>
    /// <exception cref="ArgumentException">An extent is negative, or the byte count overflows.</exception>
    /// <exception cref="NativeTensorException">The device is out of memory.</exception>
    public static Tensor Empty(DType dtype, IReadOnlyList<long> shape, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        _ = dtype.SizeOf();
        return Allocate(dtype, CheckShape(shape), device ?? Device.Default);
    }

    /// <summary>A new tensor of zeros (all bits clear: +0 for every floating-point dtype).</summary>
    /// <exception cref="ArgumentException">An extent is negative, or the byte count overflows.</exception>
    /// <exception cref="NativeTensorException">The device is out of memory.</exception>
    public static Tensor Zeros(DType dtype, IReadOnlyList<long> shape, Device? device = null)
    {
        Tensor tensor = Empty(dtype, shape, device);
        try
        {
            // A bounded block of zeros written repeatedly: no host array the size of the tensor.
            ReadOnlySpan<byte> zeros = new byte[(int)Math.Min(tensor.ByteCount, 1 << 20)];
            for (long offset = 0; offset < tensor.ByteCount; offset += zeros.Length)
                tensor.Device.Backend.Write(tensor.Buffer, offset, zeros[..(int)Math.Min(zeros.Length, tensor.ByteCount - offset)]);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>A new tensor with the same shape and contents on <paramref name="device"/> (a copy even when it is this device).</summary>
    public Tensor To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        Tensor result = Allocate(DType, (long[])_shape.Clone(), device);
        try
        {
            CopyBytes(this, 0, result, 0, ByteCount);
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>The elements, copied to a new host array.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        CheckElementType<T>();
        // Transfers move spans of bytes, and a span holds at most 2 GiB.
        if (ByteCount > int.MaxValue)
            throw new InvalidOperationException($"{this} holds {ByteCount:N0} bytes; ToArray copies at most {int.MaxValue:N0}");
        var result = new T[ElementCount];
        CopyTo<T>(result);
        return result;
    }

    /// <summary>Copies every element to <paramref name="destination"/>, which must be exactly <see cref="ElementCount"/> long.</summary>
    public void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        CheckElementType<T>();
        CheckLength(destination.Length, nameof(destination));
        Device.Backend.Read(Buffer, 0, MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Overwrites every element from <paramref name="source"/>, which must be exactly <see cref="ElementCount"/> long.</summary>
    /// <exception cref="InvalidOperationException">The tensor is read-only.</exception>
    public void CopyFrom<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        if (IsReadOnly) throw new InvalidOperationException($"{this} is read-only (a view of a mapped file): copy it into a tensor of its own to change it");
        CheckElementType<T>();
        CheckLength(source.Length, nameof(source));
        Device.Backend.Write(Buffer, 0, MemoryMarshal.AsBytes(source));
    }

    /// <summary>
    /// The elements of a tensor on <see cref="Device.Cpu"/>, in place, without a copy. The span is valid until
    /// the tensor is disposed; keeping it longer is a use-after-free.
    /// </summary>
    /// <exception cref="InvalidOperationException">The tensor is read-only (use <see cref="AsReadOnlySpan{T}"/>), is not on the CPU, or holds 2 GiB or more (a span's limit).</exception>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        if (IsReadOnly) throw new InvalidOperationException($"{this} is read-only (a view of a mapped file): use AsReadOnlySpan");
        return HostSpan<T>(nameof(AsSpan));
    }

    /// <summary>
    /// As <see cref="AsSpan{T}"/>, for reading only; the way in place into a read-only tensor (writing through a span of
    /// a read-only mapping would fault).
    /// </summary>
    /// <exception cref="InvalidOperationException">The tensor is not on the CPU, or holds 2 GiB or more (a span's limit).</exception>
    public ReadOnlySpan<T> AsReadOnlySpan<T>() where T : unmanaged => HostSpan<T>(nameof(AsReadOnlySpan));

    private Span<T> HostSpan<T>(string caller) where T : unmanaged
    {
        CheckElementType<T>();
        if (Device.Kind != DeviceKind.Cpu)
            throw new InvalidOperationException($"{caller} needs a cpu tensor; this one is on {Device.Spec}: use CopyTo or To(Device.Cpu)");
        if (ByteCount > int.MaxValue)
            throw new InvalidOperationException($"{this} holds {ByteCount:N0} bytes; a span holds at most {int.MaxValue:N0}");
        return MemoryMarshal.Cast<byte, T>(CpuBytes(Buffer, ByteCount));
    }

    /// <summary>Frees the device memory now (a view: releases its hold on the memory's owner). Safe to call more than once.</summary>
    public void Dispose() => _buffer.Dispose();

    /// <inheritdoc/>
    public override string ToString() => $"Tensor({DType}, [{string.Join(", ", _shape)}], {Device.Spec})";

    internal static Tensor Allocate(DType dtype, long[] shape, Device device)
    {
        long bytes;
        try { bytes = checked(Product(shape) * dtype.SizeOf()); }
        catch (OverflowException) { throw new ArgumentException($"shape [{string.Join(", ", shape)}] of {dtype} overflows a 64-bit byte count", nameof(shape)); }
        return new Tensor(dtype, shape, device, device.Backend.Allocate(bytes));
    }

    /// <summary>
    /// A tensor over the bytes its shape needs of host memory at <paramref name="byteOffset"/> into the block of
    /// <paramref name="ownerBytes"/> bytes that <paramref name="owner"/> holds (its handle is the block's address). The
    /// tensor keeps the owner alive until it is disposed; it never frees the block itself.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The view would not lie inside the block.</exception>
    /// <exception cref="ObjectDisposedException">The owner is closed.</exception>
    internal static Tensor ViewOfHostMemory(DType dtype, IReadOnlyList<long> shape, SafeHandle owner, long ownerBytes, long byteOffset, bool readOnly)
    {
        long[] checkedShape = CheckShape(shape);
        long bytes = checked(Product(checkedShape) * dtype.SizeOf());
        if (byteOffset < 0 || ownerBytes < 0 || bytes > ownerBytes - byteOffset)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), byteOffset,
                $"a view of {bytes:N0} bytes at offset {byteOffset:N0} does not fit a block of {ownerBytes:N0} bytes");
        Device cpu = Device.Cpu;
        return new Tensor(dtype, checkedShape, cpu, Runtime.Cpu.CpuViewBuffer.Create(cpu.Backend, owner, byteOffset, bytes), readOnly);
    }

    /// <summary>
    /// A tensor over <paramref name="buffer"/> of <paramref name="device"/>, which already holds exactly the bytes the
    /// shape needs: how a device's interop wraps memory its caller owns (an ILGPU view). The tensor's Dispose releases the
    /// buffer, which for such a view frees nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The shape does not hold the buffer's bytes.</exception>
    internal static Tensor OverDeviceBuffer(DType dtype, IReadOnlyList<long> shape, Device device, DeviceBuffer buffer)
    {
        long[] checkedShape = CheckShape(shape);
        long bytes;
        try { bytes = checked(Product(checkedShape) * dtype.SizeOf()); }
        catch (OverflowException) { throw new ArgumentException($"shape [{string.Join(", ", shape)}] of {dtype} overflows a 64-bit byte count", nameof(shape)); }
        if (bytes != buffer.ByteCount)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] of {dtype} holds {bytes:N0} bytes, but the memory holds {buffer.ByteCount:N0}", nameof(shape));
        return new Tensor(dtype, checkedShape, device, buffer);
    }

    /// <summary>Refuses a read-only tensor where an op would write: <c>ArgumentException</c> naming <paramref name="name"/>.</summary>
    internal void RequireWritable(string name)
    {
        if (IsReadOnly)
            throw new ArgumentException($"{name} is read-only (a view of a mapped file): write into a tensor of its own", name);
    }

    internal static long[] CheckShape(IReadOnlyList<long> shape)
    {
        var copy = new long[shape.Count];
        for (int i = 0; i < copy.Length; i++)
        {
            if (shape[i] < 0) throw new ArgumentException($"shape[{i}] = {shape[i]}: extents must be >= 0", nameof(shape));
            copy[i] = shape[i];
        }
        return copy;
    }

    internal static long Product(IReadOnlyList<long> shape)
    {
        long n = 1;
        for (int i = 0; i < shape.Count; i++) n = checked(n * shape[i]);
        return n;
    }

    /// <summary>The bytes of a CPU buffer as a span (CPU buffer handles are host addresses).</summary>
    internal static Span<byte> CpuBytes(DeviceBuffer buffer, long bytes) => CpuBytes(buffer, 0, checked((int)bytes));

    internal static unsafe Span<byte> CpuBytes(DeviceBuffer buffer, long offset, int bytes) =>
        new((byte*)buffer.DangerousGetHandle() + offset, bytes);

    private void CheckElementType<T>() where T : unmanaged
    {
        DType requested = DTypes.Of<T>();
        if (requested != DType)
            throw new ArgumentException($"element type {typeof(T).Name} is {requested} but the tensor is {DType}", nameof(T));
    }

    private void CheckLength(int length, string name)
    {
        if (length != ElementCount)
            throw new ArgumentException($"{name} has {length} elements but the tensor has {ElementCount}", name);
    }

    /// <summary>
    /// Copies <paramref name="bytes"/> from one tensor's buffer to another's, on any pair of devices: a device copy when
    /// both share a backend, else in chunks (a span holds at most 2 GiB) straight from or into host memory when one side
    /// is the CPU, else through one reusable host staging block. Offsets and length are the caller's to have checked.
    /// </summary>
    internal static void CopyBytes(Tensor source, long sourceOffset, Tensor destination, long destinationOffset, long bytes)
    {
        DeviceBuffer from = source.Buffer, to = destination.Buffer;
        // Host spans below are made from these offsets directly, so check them here, once, for every path.
        if (bytes < 0 || sourceOffset < 0 || destinationOffset < 0 || sourceOffset > from.ByteCount - bytes || destinationOffset > to.ByteCount - bytes)
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes,
                $"copying {bytes:N0} bytes from offset {sourceOffset:N0} of {from.ByteCount:N0} to offset {destinationOffset:N0} of {to.ByteCount:N0} runs out of a buffer");
        if (bytes == 0) return;
        Backend reader = source.Device.Backend, writer = destination.Device.Backend;
        if (reader == writer)
        {
            reader.Copy(from, sourceOffset, to, destinationOffset, bytes);
            return;
        }
        const int Chunk = 1 << 30;
        byte[]? staging = reader.Kind != DeviceKind.Cpu && writer.Kind != DeviceKind.Cpu ? new byte[(int)Math.Min(bytes, Chunk)] : null;
        for (long done = 0; done < bytes; done += Chunk)
        {
            int length = (int)Math.Min(Chunk, bytes - done);
            if (reader.Kind == DeviceKind.Cpu)
            {
                using var hold = new Lease(from);
                writer.Write(to, destinationOffset + done, CpuBytes(from, sourceOffset + done, length));
            }
            else if (writer.Kind == DeviceKind.Cpu)
            {
                using var hold = new Lease(to);
                reader.Read(from, sourceOffset + done, CpuBytes(to, destinationOffset + done, length));
            }
            else
            {
                Span<byte> part = staging.AsSpan(0, length);
                reader.Read(from, sourceOffset + done, part);
                writer.Write(to, destinationOffset + done, part);
            }
        }
    }
}
