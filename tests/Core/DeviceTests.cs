namespace NativeTensor.Tests.Core;

public sealed class DeviceTests
{
    [Fact]
    public void The_cpu_is_always_first_and_available()
    {
        Assert.Same(Device.Cpu, Device.Available[0]);
        Assert.Same(Device.Cpu, Device.Get("cpu"));
        Assert.Same(Device.Cpu, Device.Get(" CPU:0 "));
        Assert.Null(Device.UnavailableReason(DeviceKind.Cpu));
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:x")]
    [InlineData("opencl:-1")]
    [InlineData("cuda:0:1")]
    [InlineData("")]
    public void Specs_that_do_not_parse_are_refused(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => Device.Get(spec));
        Assert.Contains(spec, e.Message);
    }

    [Fact]
    public void A_device_that_is_not_there_says_why()
    {
        var e = Assert.Throws<NativeTensorException>(() => Device.Get("opencl:99"));
        Assert.Contains("opencl:99", e.Message);
        Assert.Throws<NativeTensorException>(() => Device.Get("cpu:1"));
        foreach (DeviceKind kind in Enum.GetValues<DeviceKind>())
            if (Device.Available.All(d => d.Kind != kind))
                Assert.False(string.IsNullOrWhiteSpace(Device.UnavailableReason(kind)));
    }

    [Fact]
    public void Default_honours_the_environment_variable()
    {
        string? saved = Environment.GetEnvironmentVariable("NATIVETENSOR_DEVICE");
        try
        {
            Environment.SetEnvironmentVariable("NATIVETENSOR_DEVICE", null);
            Assert.Same(Device.Cpu, Device.Default);
            Environment.SetEnvironmentVariable("NATIVETENSOR_DEVICE", "cpu");
            Assert.Same(Device.Cpu, Device.Default);
            Environment.SetEnvironmentVariable("NATIVETENSOR_DEVICE", "tpu");
            Assert.Throws<ArgumentException>(() => Device.Default);
            Device last = Device.Available[^1];
            Environment.SetEnvironmentVariable("NATIVETENSOR_DEVICE", last.Spec);
            Assert.Same(last, Device.Default);
        }
        finally
        {
            Environment.SetEnvironmentVariable("NATIVETENSOR_DEVICE", saved);
        }
    }

    [Fact]
    public void Every_available_device_describes_itself()
    {
        foreach (Device device in Device.Available)
        {
            Assert.Same(device, Device.Get(device.Spec));
            Assert.False(string.IsNullOrWhiteSpace(device.Name));
            Assert.True(device.TotalMemory > 0);
            Assert.StartsWith(device.Spec, device.ToString());
        }
    }

    [Fact]
    public void Free_memory_is_the_drivers_figure_where_there_is_one_and_allocations_are_counted()
    {
        foreach (Device device in Device.Available)
        {
            long? free = device.FreeMemory;
            if (device.Kind == DeviceKind.Cuda) Assert.InRange(free!.Value, 1, device.TotalMemory);
            else Assert.Null(free);                            // no portable query: MemoryBudget answers for the host
            long before = device.AllocatedBytes;
            using (Tensor.Empty(DType.Float32, [1000], device))
                Assert.Equal(before + 4000, device.AllocatedBytes);
            Assert.Equal(before, device.AllocatedBytes);
        }
    }
}
