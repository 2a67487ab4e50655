using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using NativeTensor.Runtime.Ilgpu;

namespace NativeTensor;

/// <summary>
/// Interop between NativeTensor and a caller's own ILGPU code: run your ILGPU kernels over NativeTensor tensors, and
/// NativeTensor's ops over your ILGPU memory, without copies.
/// </summary>
/// <remarks>
/// Ownership never moves. A view from <see cref="AsArrayView{T}"/> belongs to its tensor: valid until the tensor is
/// disposed. A tensor from <see cref="Wrap{T}(ArrayView{T}, long[])"/> belongs to you together with the memory it views:
/// disposing the tensor frees nothing, and the memory must outlive it. A device from <see cref="DeviceOf"/> uses your
/// accelerator and never disposes it. Ordering: NativeTensor queues its work on the accelerator's default stream, so your
/// kernels on that stream run in order with it; on another stream, synchronise first.
/// </remarks>
public static class Ilgpu
{
    private static readonly ConditionalWeakTable<Accelerator, Device> External = new();

    /// <summary>
    /// The device that runs NativeTensor's ops on <paramref name="accelerator"/>: the discovered device when the
    /// accelerator is one NativeTensor created, else a device over yours (<see cref="Device.Spec"/> <c>ilgpu:external</c>;
    /// the same device for the same accelerator), which never disposes it.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="accelerator"/> is null.</exception>
    public static Device DeviceOf(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        foreach (Device device in Device.Available)
            if (device.Backend is IlgpuBackend { IsCreated: true } ilgpu && ReferenceEquals(ilgpu.Accelerator, accelerator)) return device;
        return External.GetValue(accelerator, a => new Device(new IlgpuBackend(a), 0));
    }

    /// <summary>The accelerator an ILGPU device runs on (created now if it was not yet): the one to launch your kernels on for its tensors.</summary>
    /// <exception cref="ArgumentException"><paramref name="device"/> is not an ILGPU device.</exception>
    /// <exception cref="NativeTensorException">ILGPU could not create the accelerator.</exception>
    public static Accelerator AcceleratorOf(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.Backend is IlgpuBackend ilgpu
            ? ilgpu.Accelerator
            : throw new ArgumentException($"{device.Spec} is not an ILGPU device", nameof(device));
    }

    /// <summary>
    /// The elements of <paramref name="tensor"/>, which lives on an ILGPU device, as an ILGPU view (<c>view[i]</c> is
    /// element i in row-major order), for your own kernels to read or write. The tensor keeps ownership: the view is
    /// valid until the tensor is disposed. Work NativeTensor queued on the tensor may still be running; it is ordered
    /// before your kernels on the accelerator's default stream.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not on an ILGPU device, or <typeparamref name="T"/> is not its element type.</exception>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public static ArrayView<T> AsArrayView<T>(this Tensor tensor) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Device.Backend is not IlgpuBackend)
            throw new ArgumentException($"the tensor is on {tensor.Device.Spec}, not on an ILGPU device", nameof(tensor));
        DType requested = DTypes.Of<T>();
        if (requested != tensor.DType)
            throw new ArgumentException($"element type {typeof(T).Name} is {requested} but the tensor is {tensor.DType}", nameof(T));
        return ((IlgpuBuffer)tensor.Buffer).View.Cast<T>();
    }

    /// <summary>
    /// A tensor of <paramref name="shape"/> over <paramref name="view"/>, without a copy, on the device of the view's
    /// accelerator (<see cref="DeviceOf"/>). You keep ownership: disposing the tensor frees nothing, and the memory must
    /// outlive the tensor. The view must start 16-byte aligned in its buffer (the kernels choose their copy width from
    /// offsets), which a whole buffer always does.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The view is empty-and-unbacked or unaligned, <typeparamref name="T"/> has no DType, or the shape does not hold exactly the view's elements.
    /// </exception>
    public static Tensor Wrap<T>(ArrayView<T> view, params long[] shape) where T : unmanaged
    {
        DType dtype = DTypes.Of<T>();
        if (!view.IsValid) throw new ArgumentException("the view is not valid (no buffer)", nameof(view));
        long offset = ((IContiguousArrayView)view).IndexInBytes;
        if (offset % 16 != 0) throw new ArgumentException($"the view starts {offset} bytes into its buffer: it must start 16-byte aligned", nameof(view));
        if (shape.Length == 0) shape = [view.Length];
        Device device = DeviceOf(view.GetAccelerator());
        var buffer = IlgpuBuffer.Wrap((IlgpuBackend)device.Backend, view.Cast<byte>());
        try
        {
            return Tensor.OverDeviceBuffer(dtype, shape, device, buffer);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>A tensor of <paramref name="shape"/> over the whole of <paramref name="buffer"/>, without a copy: as <see cref="Wrap{T}(ArrayView{T}, long[])"/>.</summary>
    public static Tensor Wrap<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, params long[] shape) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return Wrap(buffer.View.AsContiguous(), shape);
    }
}
