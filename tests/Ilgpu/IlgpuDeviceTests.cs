using NativeTensor.Runtime.Ilgpu;
using NativeTensor.Runtime.Kernels;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Ilgpu;

/// <summary>
/// ILGPU devices as the rest of the library sees them: specs that parse and print, discovery after the CUDA devices,
/// an emulated CPU whose groups hold linalg's 256-thread tiles, no buffer left behind, and failures that surface as
/// <see cref="NativeTensorException"/> with ILGPU's own words.
/// </summary>
public sealed class IlgpuDeviceTests
{
    [Fact]
    public void Specs_of_every_ilgpu_device_parse_back_to_it()
    {
        Device[] ilgpu = [.. Device.Available.Where(d => d.Kind == DeviceKind.Ilgpu)];
        if (ilgpu.Length == 0) throw Backends.Missing("ilgpu", $"no ilgpu device: {Device.UnavailableReason(DeviceKind.Ilgpu)}");
        foreach (Device device in ilgpu)
        {
            Assert.Matches("^ilgpu:(cpu|cuda:[0-9]+|opencl:[0-9]+)$", device.Spec);
            Assert.Same(device, Device.Get(device.Spec));
            Assert.Same(device, Device.Get(device.Spec.ToUpperInvariant()));
        }
        Assert.Same(ilgpu[0], Device.Get("ilgpu"));
        Assert.Same(Device.Get("ilgpu:cpu"), Device.Get("ilgpu:cpu:0"));
        if (ilgpu.Any(d => d.Spec == "ilgpu:cuda:0")) Assert.Same(Device.Get("ilgpu:cuda:0"), Device.Get("ilgpu:cuda"));
    }

    [Fact]
    public void Ilgpu_devices_come_after_every_cuda_device()
    {
        IReadOnlyList<Device> all = Device.Available;
        int firstIlgpu = all.ToList().FindIndex(d => d.Kind == DeviceKind.Ilgpu);
        if (firstIlgpu < 0) throw Backends.Missing("ilgpu", $"no ilgpu device: {Device.UnavailableReason(DeviceKind.Ilgpu)}");
        Assert.All(all.Skip(firstIlgpu), d => Assert.Equal(DeviceKind.Ilgpu, d.Kind));
        Assert.Null(Device.UnavailableReason(DeviceKind.Ilgpu));
    }

    [Theory]
    [InlineData("ilgpu:gpu")]
    [InlineData("ilgpu:cuda:x")]
    [InlineData("ilgpu:cuda:-1")]
    [InlineData("ilgpu:cuda:0:1")]
    [InlineData("ilgpu:")]
    public void Malformed_ilgpu_specs_are_refused(string spec) =>
        Assert.Throws<ArgumentException>(() => Device.Get(spec));

    [Fact]
    public void Ilgpu_devices_that_are_not_there_say_why()
    {
        var e = Assert.Throws<NativeTensorException>(() => Device.Get("ilgpu:cuda:99"));
        Assert.Contains("ilgpu:cuda:99", e.Message);
        Assert.Throws<NativeTensorException>(() => Device.Get("ilgpu:cpu:1"));
    }

    [Fact]
    public void The_environment_variable_accepts_ilgpu_specs()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        string? saved = Environment.GetEnvironmentVariable("NATIVETENSOR_DEVICE");
        try
        {
            Environment.SetEnvironmentVariable("NATIVETENSOR_DEVICE", device.Spec);
            Assert.Same(device, Device.Default);
        }
        finally
        {
            Environment.SetEnvironmentVariable("NATIVETENSOR_DEVICE", saved);
        }
    }

    [Fact]
    public void Every_ilgpu_device_holds_the_exact_groups_its_kernels_demand()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        var backend = (IlgpuBackend)device.Backend;
        foreach (DeviceKernel kernel in KernelBackend.Declarations.Where(k => k.GroupThreads > 0))
            Assert.True(backend.Limits(kernel).MaxGroupThreads >= kernel.GroupThreads, $"{kernel} needs groups of {kernel.GroupThreads}");
    }

    [Fact]
    public void Tensors_and_ops_leave_no_buffer_behind()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        long buffers = device.Backend.LiveBuffers, bytes = device.Backend.LiveBytes;
        float[] data = [.. Enumerable.Range(0, 64).Select(i => i * 0.5f)];
        using (Tensor host = Tensor.FromArray(data, 16, 4))
        using (Tensor frames = host.To(device))
        using (Tensor empty = Tensor.Empty(DType.Float32, [0], device))
        using (Tensor windows = Windows.Eager(frames, 3, 2))
        using (Tensor half = Precision.Convert(windows, DType.Float16))
        {
            Assert.Equal(buffers + 4, device.Backend.LiveBuffers);
            Assert.Equal(Windows.Count(16, 3, 2) * 3 * 4 * (sizeof(float) + 2), device.Backend.LiveBytes - bytes - 64 * sizeof(float));
        }
        Assert.Equal(buffers, device.Backend.LiveBuffers);
        Assert.Equal(bytes, device.Backend.LiveBytes);
    }

    [Fact]
    public void Buffer_handles_are_distinct_and_valid()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        using Tensor a = Tensor.Empty(DType.Float32, [0], device), b = Tensor.Empty(DType.Float32, [0], device);
        Assert.False(a.Buffer.IsInvalid);
        Assert.NotEqual(a.Buffer.DangerousGetHandle(), b.Buffer.DangerousGetHandle());
    }

    [Fact]
    public void Markers_time_the_work_queued_between_them()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        using Tensor frames = Tensor.Empty(DType.Float32, [64, 8], device);
        using var start = device.Backend.RecordEvent();
        using (Windows.Eager(frames, 4)) { }
        using var end = device.Backend.RecordEvent();
        double elapsed = end.MillisecondsSince(start);
        Assert.True(elapsed >= 0 && double.IsFinite(elapsed), $"{elapsed} ms");
    }

    /// <summary>A launch ILGPU refuses (a group larger than any accelerator holds) surfaces with ILGPU's message and exception type.</summary>
    [Fact]
    public void A_failing_launch_is_a_native_tensor_exception_with_ilgpus_words()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        var backend = (IlgpuBackend)device.Backend;
        using Tensor source = Tensor.Empty(DType.Float32, [16], device), destination = Tensor.Empty(DType.Float16, [16], device);
        DeviceKernel kernel = PrecisionKernels.Convert(DType.Float32, DType.Float16);
        var e = Assert.Throws<NativeTensorException>(() =>
            backend.LaunchDirectly(kernel, new LaunchShape(1, 1, 4096), source.Buffer, destination.Buffer, 16L));
        Assert.False(string.IsNullOrEmpty(e.ErrorName));
        Assert.NotNull(e.InnerException);
        Assert.Contains(e.InnerException!.Message, e.Message);
        Assert.Contains(kernel.Entry, e.Message);
    }

    /// <summary>A kernel with no ILGPU method is refused at Prepare, before anything is written, with the entry's name.</summary>
    [Fact]
    public void A_declaration_without_a_kernel_is_refused_before_launch()
    {
        Device device = Backends.Require(DeviceKind.Ilgpu);
        var backend = (IlgpuBackend)device.Backend;
        var missing = new DeviceKernel("none.cl", "no_such_kernel", [KernelParameter.Int32("n")]);
        var e = Assert.Throws<NativeTensorException>(() => backend.LaunchDirectly(missing, new LaunchShape(1, 1, 1), 1));
        Assert.Equal("EntryNotFound", e.ErrorName);
        Assert.Contains("no_such_kernel", e.Message);
    }
}
