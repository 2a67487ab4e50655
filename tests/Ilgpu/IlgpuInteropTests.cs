using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Ilgpu;

/// <summary>
/// <see cref="NativeTensor.Ilgpu"/>: a caller's own ILGPU kernel over NativeTensor tensors, NativeTensor's ops over the
/// caller's ILGPU memory and accelerator, and ownership that never moves.
/// </summary>
public sealed class IlgpuInteropTests
{
    /// <summary>A kernel as a user would write it: implicitly grouped, one element per thread.</summary>
    private static void Square(Index1D i, ArrayView<float> data) => data[i] = data[i] * data[i];

    private static float[] Data(int count) => [.. Enumerable.Range(0, count).Select(i => (i - count / 2) * 0.37f)];

    [Fact]
    public void A_users_kernel_runs_over_a_tensor_then_an_op_runs_over_its_result()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        Accelerator accelerator = NativeTensor.Ilgpu.AcceleratorOf(device);
        float[] data = Data(12 * 5);
        using Tensor frames = Tensor.FromArray(data, 12, 5).To(device);

        ArrayView<float> view = frames.AsArrayView<float>();
        Assert.Equal(data.Length, view.Length);
        var square = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>>(Square);
        square(accelerator.DefaultStream, (int)view.Length, view);

        long[] starts = [0, 7, 3, 9];
        using Tensor windows = Windows.Gather(frames, starts, 3, outputType: DType.Float16);
        float[] squared = [.. data.Select(x => x * x)];
        float[] gathered = WindowsReference.Gather(squared, 12, 5, starts, 3);
        ushort[] expected = [.. gathered.Select(x => (ushort)PrecisionReference.Convert(BitConverter.SingleToUInt32Bits(x), DType.Float32, DType.Float16))];
        Assert.Equal(expected, windows.ToArray<System.Half>().Select(h => BitConverter.HalfToUInt16Bits(h)));
    }

    [Fact]
    public void A_wrapped_buffer_is_used_in_place_and_stays_the_callers()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        Accelerator accelerator = NativeTensor.Ilgpu.AcceleratorOf(device);
        float[] data = Data(10 * 4);
        using MemoryBuffer1D<float, Stride1D.Dense> buffer = accelerator.Allocate1D(data);
        long buffers = device.Backend.LiveBuffers;
        using (Tensor frames = NativeTensor.Ilgpu.Wrap(buffer, 10, 4))
        {
            Assert.Same(device, frames.Device);
            Assert.Equal(buffers, device.Backend.LiveBuffers);   // a view, not an allocation
            using Tensor windows = Windows.Eager(frames, 4, 3);
            Assert.Equal(WindowsReference.Eager(data, 10, 4, 4, 3), windows.ToArray<float>());
            // The tensor is the buffer: a write through NativeTensor shows in the caller's buffer.
            frames.CopyFrom<float>([.. data.Select(x => -x)]);
        }
        Assert.Equal(buffers, device.Backend.LiveBuffers);
        Assert.Equal(data.Select(x => -x), buffer.GetAsArray1D());   // disposing the tensor freed nothing
    }

    [Fact]
    public void Wrapping_refuses_a_shape_that_does_not_hold_the_buffer()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        using MemoryBuffer1D<float, Stride1D.Dense> buffer = NativeTensor.Ilgpu.AcceleratorOf(device).Allocate1D<float>(12);
        Assert.Throws<ArgumentException>(() => NativeTensor.Ilgpu.Wrap(buffer, 5, 3));
        Assert.Throws<ArgumentException>(() => NativeTensor.Ilgpu.Wrap(buffer.View.AsContiguous().SubView(1, 8), 8));   // 4 bytes in: unaligned
    }

    [Fact]
    public void A_tensor_off_ilgpu_has_no_array_view()
    {
        using Tensor cpu = Tensor.FromArray(new float[] { 1, 2 });
        Assert.Throws<ArgumentException>(() => cpu.AsArrayView<float>());
        Device device = Backends.Require(DeviceKind.Ilgpu);
        using Tensor ints = Tensor.Empty(DType.Int32, [2], device);
        Assert.Throws<ArgumentException>(() => ints.AsArrayView<float>());
    }

    [Fact]
    public void A_users_accelerator_is_a_device_it_keeps()
    {
        using Context context = Context.Create(builder => builder.CPU(new CPUDevice(32, 8, 1)));
        using CPUAccelerator accelerator = context.CreateCPUAccelerator(0);
        Device device = NativeTensor.Ilgpu.DeviceOf(accelerator);
        Assert.Same(device, NativeTensor.Ilgpu.DeviceOf(accelerator));
        Assert.Equal(DeviceKind.Ilgpu, device.Kind);
        Assert.Equal("ilgpu:external", device.Spec);
        Assert.Same(accelerator, NativeTensor.Ilgpu.AcceleratorOf(device));
        float[] data = Data(9 * 2);
        using (Tensor frames = Tensor.FromArray(data, 9, 2).To(device))
        using (Tensor windows = Windows.Eager(frames, 2, 2))
            Assert.Equal(WindowsReference.Eager(data, 9, 2, 2, 2), windows.ToArray<float>());
        Assert.Equal(0, device.Backend.LiveBuffers);
        Assert.False(accelerator.IsDisposed);
    }
}
