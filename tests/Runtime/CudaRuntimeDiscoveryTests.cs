using System.Runtime.InteropServices;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Cuda;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// What the CUDA runtime does on any machine, with or without a GPU: discovery never throws and always explains an
/// absence, a missing driver or NVRTC is named with where it was looked for, and the launch shape obeys its bounds.
/// </summary>
public sealed class CudaRuntimeDiscoveryTests
{
    private static bool DriverLoads => NativeLibrary.TryLoad("libcuda.so.1", out _) || NativeLibrary.TryLoad("nvcuda.dll", out _);

    [Fact]
    public void Discover_NeverThrows_AndGivesDevicesOrAReason()
    {
        var results = new (IReadOnlyList<Backend> Found, string? Reason)[8];
        Parallel.For(0, results.Length, i => results[i] = CudaBackend.Discover());
        foreach ((IReadOnlyList<Backend> found, string? reason) in results)
        {
            Assert.Equal(found.Count == 0, reason is not null);
            Assert.All(found, b => Assert.Equal(DeviceKind.Cuda, b.Kind));
        }
    }

    [Fact]
    public void Available_AndUnavailableReason_Agree()
    {
        bool listed = Device.Available.Any(d => d.Kind == DeviceKind.Cuda);
        string? reason = Device.UnavailableReason(DeviceKind.Cuda);
        Assert.Equal(!listed, reason is not null);
        Assert.True(reason is null || reason.Length > 0);
    }

    [Fact]
    public void WithoutADriver_NoDeviceIsListed_AndTheReasonNamesTheLibrary()
    {
        Assert.SkipWhen(DriverLoads, "the NVIDIA driver is installed here");
        Assert.DoesNotContain(Device.Available, d => d.Kind == DeviceKind.Cuda);
        string? reason = Device.UnavailableReason(DeviceKind.Cuda);
        Assert.NotNull(reason);
        Assert.Contains(OperatingSystem.IsWindows() ? "nvcuda.dll not found" : "libcuda.so.1 not found", reason);
    }

    [Fact]
    public void WithoutADevice_GetThrowsWithTheReason()
    {
        Assert.SkipWhen(Device.Available.Any(d => d.Kind == DeviceKind.Cuda), "a CUDA device is present");
        var error = Assert.Throws<NativeTensorException>(() => Device.Get("cuda"));
        Assert.Contains("'cuda' is not available", error.Message);
        Assert.Contains(Device.UnavailableReason(DeviceKind.Cuda)!, error.Message);
        Assert.Throws<NativeTensorException>(() => Device.Get("cuda:1"));
    }

    [Fact]
    public void WithoutNvrtc_TheErrorListsTheVersionsAndFoldersSearched()
    {
        LibrarySearch search = NativeLibraries.Nvrtc;
        Assert.SkipWhen(search.TryLoadFirst(out _, out string found), $"NVRTC is installed here ({found})");
        var error = Assert.Throws<NativeTensorException>(() => Nvrtc.Select(13000, 90, search));
        Assert.Contains("libnvrtc.so.13", error.Message);
        Assert.Contains("libnvrtc.so.12", error.Message);
        Assert.Contains("/usr/local/cuda/lib64", error.Message);
    }

    [Fact]
    public void WithoutADriver_EveryLoadFails_NamingWhereItLooked()
    {
        Assert.SkipWhen(DriverLoads, "the NVIDIA driver is installed here");
        // A failure is not kept: each call looks again, so a driver installed later would be found.
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var error = Assert.Throws<DllNotFoundException>(() => CudaDriver.System);
            Assert.Contains(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1", error.Message);
        }
        Assert.Equal("CUresult 700", CudaDriver.UnknownName(700));
    }

    [Fact]
    public void A_search_tries_each_name_everywhere_before_the_next_name()
    {
        var search = new LibrarySearch("a library", ["libx.so.2", "libx.so"], ["/opt/a", "/opt/b"]);
        Assert.Equal(["libx.so.2", "/opt/a/libx.so.2", "/opt/b/libx.so.2", "libx.so", "/opt/a/libx.so", "/opt/b/libx.so"], search.Locations());
        Assert.Equal(["/opt/a/libx.so.2", "/opt/b/libx.so.2", "/opt/a/libx.so", "/opt/b/libx.so"], (search with { LoaderPath = false }).Locations());
        Assert.Equal("libx.so.2, libx.so on the loader path (LD_LIBRARY_PATH, ldconfig) and in /opt/a, /opt/b", search.Description);
    }
}
