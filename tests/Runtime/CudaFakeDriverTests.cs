using System.Runtime.CompilerServices;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Cuda;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// The CUDA runtime's host side against a fake driver and fake NVRTCs built from C (see <see cref="FakeCuda"/>), on
/// every machine: which library each symbol comes from, which NVRTC builds for which driver, whose context is
/// current after each call, how memory is freed, and how a device fault is reported. What a fake cannot show (the
/// kernels' results, real timings) is the GPU suite's job.
/// </summary>
public sealed class CudaFakeDriverTests
{
    private const long Elements = 1024;

    // ---- Event timing binds cuEventElapsedTime from the driver it loaded ------------------------------------------

    [Fact]
    public void Timing_BindsTheOldSymbol_FromTheVersionedDriver_NotTheToolkitStub()
    {
        // libcuda.so (the stub, which answers CUDA_ERROR_STUB_LIBRARY) and libcuda.so.1 (a driver older than CUDA 12.8,
        // with only the unsuffixed symbol) side by side: the versioned one is loaded and timing binds from it.
        using var fake = new FakeCuda(elapsed: 1, stub: true);
        Assert.Equal(Path.Combine(fake.Folder, "libcuda.so.1"), fake.Driver.Location);
        using DeviceEvent start = fake.Backend.RecordEvent();
        using DeviceEvent end = fake.Backend.RecordEvent();
        Assert.Equal(0.5, end.MillisecondsSince(start));
        Assert.Equal(1, fake.Counter("elapsed_v1"));
    }

    [Fact]
    public void The_toolkits_stub_is_never_taken_for_the_driver()
    {
        using var fake = new FakeCuda(stub: true);
        // The stub first in the order of preference, then the driver: the stub loads, answers CUDA_ERROR_STUB_LIBRARY, and is passed over.
        CudaDriver driver = CudaDriver.Load(fake.DriverSearch with { Names = ["libcuda.so", "libcuda.so.1"] });
        Assert.Equal(Path.Combine(fake.Folder, "libcuda.so.1"), driver.Location);
        var error = Assert.Throws<DllNotFoundException>(() => CudaDriver.Load(fake.DriverSearch with { Names = ["libcuda.so"] }));
        Assert.Contains("only the CUDA toolkit's link-time libcuda loaded", error.Message);
        Assert.Contains(Path.Combine(fake.Folder, "libcuda.so"), error.Message);
    }

    [Fact]
    public void Timing_PrefersTheV2Symbol_WhenTheDriverExportsBoth()
    {
        using var fake = new FakeCuda(elapsed: 2);
        using DeviceEvent start = fake.Backend.RecordEvent();
        using DeviceEvent middle = fake.Backend.RecordEvent();
        using DeviceEvent end = fake.Backend.RecordEvent();
        Assert.Equal(1.0, end.MillisecondsSince(start));
        Assert.Equal(0.5, end.MillisecondsSince(middle));
        Assert.Equal((2, 0), (fake.Counter("elapsed_v2"), fake.Counter("elapsed_v1")));
    }

    [Fact]
    public void Timing_WithNeitherSymbol_FailsClearlyEachTime_AndEverythingElseWorks()
    {
        using var fake = new FakeCuda(elapsed: 0);
        using DeviceEvent start = fake.Backend.RecordEvent();
        using DeviceEvent end = fake.Backend.RecordEvent();
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var error = Assert.Throws<NativeTensorException>(() => end.MillisecondsSince(start));
            Assert.Contains("cuEventElapsedTime_v2 nor cuEventElapsedTime", error.Message);
        }
        using DeviceBuffer buffer = fake.Backend.Allocate(64);
        Assert.Equal(0, fake.Counter("wrong_context"));
    }

    // ---- NVRTC is chosen against the driver's version -------------------------------------------------------------

    private static readonly FakeNvrtc Nvrtc13 = new("libnvrtc.so.13", 13, 0, Newest: 120);
    private static readonly FakeNvrtc Nvrtc12 = new("libnvrtc.so.12", 12, 4, Newest: 90);

    [Theory]
    [InlineData(12040, "libnvrtc.so.12")]   // an R550 driver on a machine with CUDA 13 installed too
    [InlineData(12080, "libnvrtc.so.12")]
    [InlineData(13000, "libnvrtc.so.13")]
    public void Kernels_AreBuiltByTheNewestNvrtcTheDriverCanLoad(int driverVersion, string expected)
    {
        using var fake = new FakeCuda(driverVersion: driverVersion, nvrtcs: [Nvrtc13, Nvrtc12]);
        Convert(fake);
        Assert.Equal(1, fake.NvrtcCompiles(expected));
        Assert.Equal(0, fake.NvrtcCompiles(expected == Nvrtc13.FileName ? Nvrtc12.FileName : Nvrtc13.FileName));
        Assert.Equal(1, fake.Counter("modules"));
        Assert.StartsWith("f32_to_f16 grid", fake.LastLaunch);
    }

    [Theory]
    [InlineData(13000, 13, 1, 90, "--gpu-architecture=sm_90")]        // CUBIN of a newer minor: the driver loads it
    [InlineData(13000, 12, 4, 89, "--gpu-architecture=compute_89")]   // PTX of an older major: the driver compiles it
    public void Minor_version_and_older_major_images_are_accepted(int driverVersion, int major, int minor, int newest, string target)
    {
        var nvrtc = new FakeNvrtc($"libnvrtc.so.{major}", major, minor, newest);
        using var fake = new FakeCuda(driverVersion: driverVersion, nvrtcs: [nvrtc]);
        Convert(fake);
        Assert.Contains(target + " ", fake.NvrtcOptions(nvrtc.FileName));
        Assert.Equal(1, fake.Counter("modules"));
    }

    [Fact]
    public void OnlyAnNvrtcNewerThanTheDriver_IsRefusedWithWhatToInstall_AndAnInstallLaterIsFound()
    {
        using var fake = new FakeCuda(driverVersion: 12020, nvrtcs: [Nvrtc13]);
        NativeTensorException error;
        fake.PushForeign();
        try
        {
            error = Assert.Throws<NativeTensorException>(() => Convert(fake));
            Assert.Equal(fake.Foreign, fake.Current);   // a failure inside an operation leaves the caller's context too
        }
        finally
        {
            fake.Pop();
        }
        Assert.Contains("libnvrtc.so.13 is NVRTC 13, newer than the driver", error.Message);
        Assert.Contains("CUDA 12.2", error.Message);
        Assert.Contains("nvidia-cuda-nvrtc-cu12", error.Message);
        Assert.Equal(0, fake.NvrtcCompiles(Nvrtc13.FileName));
        // The failure was not kept: an NVRTC 12 installed now is found by the next operation.
        fake.AddNvrtc(new FakeNvrtc("libnvrtc.so.12", 12, 2));
        Convert(fake);
        Assert.Equal(1, fake.NvrtcCompiles("libnvrtc.so.12"));
    }

    [Fact]
    public void AnUnversionedNvrtc_IsAskedItsVersion_AndRefusedWhenNewer()
    {
        using var fake = new FakeCuda(driverVersion: 12040, nvrtcs: [Nvrtc13 with { FileName = "libnvrtc.so" }]);
        var error = Assert.Throws<NativeTensorException>(() => Convert(fake));
        Assert.Contains($"NVRTC 13.0 ({Path.Combine(fake.Folder, "libnvrtc.so")}) is newer than the driver", error.Message);
    }

    [Theory]
    [InlineData(12040, true)]    // PTX of NVRTC 12.4 for a GPU it does not know: a 12.4 driver compiles it
    [InlineData(12020, false)]   // a 12.2 driver cannot, so that NVRTC is passed over
    public void PtxForAGpuNvrtcDoesNotKnow_IsBuiltOnlyForADriverAtLeastAsNew(int driverVersion, bool builds)
    {
        using var fake = new FakeCuda(driverVersion: driverVersion, nvrtcs: [Nvrtc12 with { Newest = 89 }]);
        if (builds)
        {
            Convert(fake);
            Assert.Contains("--gpu-architecture=compute_89", fake.NvrtcOptions(Nvrtc12.FileName));
        }
        else
        {
            var error = Assert.Throws<NativeTensorException>(() => Convert(fake));
            Assert.Contains("would give PTX (compute_89) newer than the driver can compile", error.Message);
        }
    }

    [Theory]
    [InlineData("libnvrtc.so.13", 13)]
    [InlineData("libnvrtc.so.12.4.127", 12)]
    [InlineData("/usr/local/cuda/lib64/libnvrtc.so.12", 12)]
    [InlineData("nvrtc64_120_0.dll", 12)]
    [InlineData("nvrtc64_130_0.dll", 13)]
    [InlineData("libnvrtc.so", null)]
    [InlineData("libnvrtc-builtins.so.12", null)]
    public void TheMajorVersionInAFileName_IsRead(string location, int? major) => Assert.Equal(major, Nvrtc.MajorInName(location));

    [Fact]
    public void Kernels_AreBuiltWithTheFloatOptionsStated()
    {
        using var fake = new FakeCuda();
        Convert(fake);
        string options = fake.NvrtcOptions(Nvrtc12.FileName);
        foreach (string option in new[] { "--gpu-architecture=sm_90", "--ftz=false", "--prec-div=true", "--prec-sqrt=true", "--fmad=false" })
            Assert.Contains(option + " ", options);
    }

    [Fact]
    public void CompileErrors_CarryNvrtcsNameAndLog()
    {
        using var fake = new FakeCuda();
        (Nvrtc nvrtc, Nvrtc.Target target) = Nvrtc.Select(12040, 90, fake.NvrtcSearch);
        var error = Assert.Throws<NativeTensorException>(() => nvrtc.Compile("x[0] = no_such_name;", "broken.cu", target));
        Assert.Equal("NVRTC_ERROR_COMPILATION", error.ErrorName);
        Assert.Contains("identifier \"no_such_name\" is undefined", error.Message);
    }

    // ---- The caller's current context is left as it was ------------------------------------------------------------

    [Fact]
    public void EveryOperation_LeavesTheCallersContextCurrent()
    {
        using var fake = new FakeCuda();
        CudaBackend backend = fake.Backend;
        fake.PushForeign();
        try
        {
            void Still() => Assert.Equal(fake.Foreign, fake.Current);
            DeviceBuffer frames = backend.Allocate(100 * 16);
            Still();
            backend.Write(frames, 0, new byte[100 * 16]);
            Still();
            DeviceBuffer output = backend.Allocate(4 * 3 * 16);
            backend.GatherWindows(frames, 16, [0L, 5, 9, 97], 3, output);
            Still();
            using (DeviceBuffer starts = backend.Allocate(4 * sizeof(long)))
            {
                backend.Write(starts, 0, new byte[4 * sizeof(long)]);
                backend.GatherWindows(frames, 100, 16, starts, 4, 3, output);
                Still();
            }
            backend.Copy(frames, 0, output, 0, 64);
            backend.Read(output, 0, new byte[64]);
            Still();
            Assert.NotNull(backend.FreeMemory);
            Still();
            using (DeviceBuffer half = backend.Allocate(800))
                backend.Convert(frames, DType.Float32, half, DType.Float16, 400);
            Still();
            using DeviceEvent start = backend.RecordEvent();
            using DeviceEvent end = backend.RecordEvent();
            Assert.Equal(0.5, end.MillisecondsSince(start));
            Still();
            Assert.Equal(128, backend.KernelResources("linalg.cl", "matmul_f32_f32").Registers);
            Still();
            backend.Synchronize();
            frames.Dispose();
            Still();
            backend.Dispose();
            Still();
            output.Dispose();   // the last holder of the context releases it
            Still();
        }
        finally
        {
            fake.Pop();
        }
        Assert.Equal(IntPtr.Zero, fake.Current);
        Assert.Equal(0, fake.Counter("wrong_context"));
        Assert.Equal(0, fake.Counter("primary_refs"));
    }

    [Fact]
    public void FinaliserFrees_EnterTheContextOnTheirOwnThread()
    {
        using var fake = new FakeCuda();
        fake.Backend.Synchronize();
        long before = fake.Counter("live_allocations");
        AllocateAndDrop(fake.Backend, 16);
        Collect();
        Assert.Equal(before, fake.Counter("live_allocations"));
        Assert.Equal(16, fake.Counter("async_frees"));
        Assert.Equal(0, fake.Counter("wrong_context"));
    }

    // ---- Frees never wait for the stream on the freeing thread ------------------------------------------------------

    [Fact]
    public void Frees_AreStreamOrdered_AndNeverWaitForTheStream()
    {
        using var fake = new FakeCuda(pools: true);
        fake.Backend.Synchronize();
        long live = fake.Counter("live_allocations"), syncs = fake.Counter("stream_syncs");
        var kept = new List<DeviceBuffer>();
        for (int i = 0; i < 4; i++) kept.Add(fake.Backend.Allocate(4096));
        AllocateAndDrop(fake.Backend, 4);
        foreach (DeviceBuffer buffer in kept) buffer.Dispose();
        Collect();
        Assert.Equal(live, fake.Counter("live_allocations"));
        Assert.Equal(syncs, fake.Counter("stream_syncs"));
        Assert.Equal((8, 8), (fake.Counter("async_allocs"), fake.Counter("async_frees")));
        Assert.Equal(0, fake.Counter("sync_frees"));
    }

    [Fact]
    public void WithoutMemoryPools_FreesAreDeferredToTheNextOperation_WhichWaitsOnce()
    {
        using var fake = new FakeCuda(pools: false);
        fake.Backend.Synchronize();
        long live = fake.Counter("live_allocations"), syncs = fake.Counter("stream_syncs");
        DeviceBuffer disposed = fake.Backend.Allocate(4096);
        AllocateAndDrop(fake.Backend, 2);
        disposed.Dispose();
        Collect();
        // Neither Dispose nor the finaliser waited for the stream or freed: the memory is still the driver's.
        Assert.Equal(syncs, fake.Counter("stream_syncs"));
        Assert.Equal(live + 3, fake.Counter("live_allocations"));
        fake.Backend.Synchronize();
        Assert.Equal(live, fake.Counter("live_allocations"));
        Assert.Equal(3, fake.Counter("sync_frees"));
        Assert.Equal(syncs + 2, fake.Counter("stream_syncs"));   // one drain before the frees, one for Synchronize itself
        Assert.Equal(0, fake.Counter("async_allocs"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Dispose_ReturnsEverythingTheDriverHandedOut(bool pools)
    {
        using var fake = new FakeCuda(pools: pools);
        CudaBackend backend = fake.Backend;
        DeviceBuffer outlives = backend.Allocate(4096);
        using (DeviceBuffer frames = backend.Allocate(64 * 16))
        using (DeviceBuffer output = backend.Allocate(2 * 4 * 16))
        {
            backend.GatherWindows(frames, 16, [0L, 7], 4, output);
            backend.Convert(frames, DType.Float32, output, DType.Float16, 64);
            using DeviceEvent start = backend.RecordEvent();
        }
        AllocateAndDrop(backend, 3);
        backend.Dispose();
        Assert.Equal(1, fake.Counter("primary_refs"));   // the buffer that outlives the backend holds the context
        outlives.Dispose();
        Collect();
        foreach (string counter in new[] { "live_allocations", "primary_refs", "streams", "events", "modules", "host_blocks", "wrong_context" })
            Assert.True(fake.Counter(counter) == 0, $"{counter} = {fake.Counter(counter)} after everything was released");
    }

    // ---- Device faults, and what the kernels use ---------------------------------------------------------------------

    [Fact]
    public void SynchronisedLaunches_ReportADeviceFault_AsTheKernelsOwn()
    {
        using var fake = new FakeCuda();
        fake.Backend.SynchronizeLaunches = true;
        fake.FaultNextLaunch();
        NativeTensorException error;
        fake.PushForeign();
        try
        {
            error = Assert.Throws<NativeTensorException>(() => Convert(fake));
            Assert.Equal(fake.Foreign, fake.Current);
        }
        finally
        {
            fake.Pop();
        }
        Assert.Equal(0, fake.Counter("wrong_context"));
        Assert.Equal("CUDA_ERROR_ILLEGAL_ADDRESS", error.ErrorName);
        Assert.Contains("f32_to_f16 (grid", error.Message);
        Assert.Contains(CudaBackend.SynchronizeVariable, error.Message);
        fake.Backend.Synchronize();   // reported once, not again by the next call
    }

    [Fact]
    public void UnsynchronisedLaunches_ReportADeviceFault_InTheNextCallThatWaits()
    {
        using var fake = new FakeCuda();
        Assert.False(fake.Backend.SynchronizeLaunches);
        fake.FaultNextLaunch();
        Convert(fake);
        var error = Assert.Throws<NativeTensorException>(() => fake.Backend.Synchronize());
        Assert.Equal("CUDA_ERROR_ILLEGAL_ADDRESS", error.ErrorName);
        Assert.Contains("cuStreamSynchronize", error.Message);
    }

    [Fact]
    public void KernelResources_AreTheDriversFiguresForThatKernel()
    {
        using var fake = new FakeCuda();
        Assert.Equal(new KernelResources("syrk_f32", 128, 8, 16640, 256), fake.Backend.KernelResources("linalg.cl", "syrk_f32"));
        Assert.Equal(new KernelResources("f32_to_bf16", 24, 0, 0, 256), fake.Backend.KernelResources("precision.cl", "f32_to_bf16"));
    }

    [Fact]
    public void Memory_RoundTripsThroughTheFakeDevice()
    {
        using var fake = new FakeCuda();
        byte[] data = Enumerable.Range(0, 1000).Select(i => (byte)(i * 7)).ToArray();
        using DeviceBuffer source = fake.Backend.Allocate(data.Length);
        using DeviceBuffer target = fake.Backend.Allocate(data.Length + 3);
        fake.Backend.Write(source, 0, data);
        fake.Backend.Copy(source, 0, target, 3, data.Length);
        var back = new byte[data.Length];
        fake.Backend.Read(target, 3, back);
        Assert.Equal(data, back);
    }

    /// <summary>One conversion launch: builds precision.cl at the first call.</summary>
    private static void Convert(FakeCuda fake)
    {
        using DeviceBuffer source = fake.Backend.Allocate(Elements * sizeof(float));
        using DeviceBuffer target = fake.Backend.Allocate(Elements * sizeof(ushort));
        fake.Backend.Convert(source, DType.Float32, target, DType.Float16, Elements);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AllocateAndDrop(Backend backend, int count)
    {
        for (int i = 0; i < count; i++) backend.Allocate(4096);
    }

    private static void Collect()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }
}
