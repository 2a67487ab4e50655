using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Cuda;

namespace NativeTensor.Tests.Infrastructure;

/// <summary>One fake NVRTC to put beside a fake driver: its file name and the version and newest architecture it reports.</summary>
public sealed record FakeNvrtc(string FileName, int Major, int Minor, int Newest = 90);

/// <summary>
/// A fake CUDA driver and fake NVRTCs (<c>tests/Runtime/Fakes/*.c</c>), built with the machine's C compiler into a
/// folder of this instance's own and bound to a CUDA backend of its own, so the CUDA runtime's host side (contexts,
/// memory, events, module loading, launches, error paths) runs in every CI run. The process's real driver (or its
/// absence) is never touched: the fakes are loaded by path, with a soname no real library has. Each instance loads
/// its own copies, so the counters it reads are its test's alone.
/// </summary>
internal sealed unsafe class FakeCuda : IDisposable
{
    /// <summary>NATIVETENSOR_REQUIRE's word for the compiler these tests need.</summary>
    public const string Requirement = "cc";

    private static readonly string Root = Path.Combine(Path.GetTempPath(), $"nativetensor-fakes-{Environment.ProcessId}");
    private static readonly ConcurrentDictionary<string, Lazy<string>> Built = new();
    private static readonly Lazy<string?> Compiler = new(FindCompiler);
    private static int _instances;

    private readonly IntPtr _control;
    private readonly Dictionary<string, IntPtr> _nvrtcs = [];
    private CudaDriver? _driver;
    private Device? _device;

    static FakeCuda() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    };

    /// <param name="elapsed">2: the driver exports cuEventElapsedTime_v2 and the old name; 1: only the old; 0: neither.</param>
    /// <param name="stub">Also put the toolkit's stub, as <c>libcuda.so</c>, beside the driver.</param>
    /// <param name="driverVersion">What cuDriverGetVersion reports (12040 for CUDA 12.4).</param>
    /// <param name="pools">Whether the device supports stream-ordered memory (CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED).</param>
    /// <param name="nvrtcs">The NVRTCs beside the driver; by default one NVRTC 12.4.</param>
    public FakeCuda(int elapsed = 2, bool stub = false, int driverVersion = 12040, bool pools = true, IReadOnlyList<FakeNvrtc>? nvrtcs = null)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "the fake CUDA driver is built and loaded on Linux only");
        if (Compiler.Value is null)
            throw Backends.Missing(Requirement, "no C compiler (cc, gcc or clang) on PATH to build the fake CUDA driver");
        Folder = Path.Combine(Root, $"instance-{Interlocked.Increment(ref _instances)}");
        Directory.CreateDirectory(Folder);
        DriverPath = Place("fake_cuda.c", "libcuda.so.1", $"-DELAPSED={elapsed}");
        if (stub) Place("fake_cuda.c", "libcuda.so", "-DSTUB");
        foreach (FakeNvrtc nvrtc in nvrtcs ?? [new FakeNvrtc("libnvrtc.so.12", 12, 4)]) AddNvrtc(nvrtc);
        _control = NativeLibrary.Load(DriverPath);
        Call("fake_set_driver_version", driverVersion);
        Call("fake_set_pools", pools ? 1 : 0);
    }

    /// <summary>The folder holding this instance's libraries.</summary>
    public string Folder { get; }

    /// <summary>The fake <c>libcuda.so.1</c>.</summary>
    public string DriverPath { get; }

    /// <summary>The search a real machine would make (libcuda.so.1, then libcuda.so), in this folder only.</summary>
    public LibrarySearch DriverSearch => NativeLibraries.CudaDriver with { Folders = [Folder], LoaderPath = false };

    /// <summary>The NVRTC search a real machine would make, in this folder only.</summary>
    public LibrarySearch NvrtcSearch => NativeLibraries.Nvrtc with { Folders = [Folder], LoaderPath = false };

    /// <summary>The fake driver, loaded through <see cref="DriverSearch"/>.</summary>
    public CudaDriver Driver => _driver ??= CudaDriver.Load(DriverSearch);

    /// <summary>The fake GPU as a device of its own (not in <see cref="Device.Available"/>); discovered on first use.</summary>
    public Device Device
    {
        get
        {
            if (_device is not null) return _device;
            (IReadOnlyList<Backend> found, string? reason) = CudaBackend.Discover(Driver, NvrtcSearch);
            Assert.True(reason is null, reason);
            return _device = new Device(Assert.Single(found), 0);
        }
    }

    /// <summary>The fake GPU's backend.</summary>
    public CudaBackend Backend => (CudaBackend)Device.Backend;

    /// <summary>One of the driver's counters (see fake_cuda.c): live_allocations, stream_syncs, async_frees, wrong_context, ...</summary>
    public long Counter(string name)
    {
        var read = (delegate* unmanaged<byte*, long>)NativeLibrary.GetExport(_control, "fake_counter");
        byte[] text = [.. System.Text.Encoding.ASCII.GetBytes(name), 0];
        long value;
        fixed (byte* bytes = text) value = read(bytes);
        Assert.True(value >= 0 || name is "live_allocations" or "live_bytes", $"the fake driver has no counter '{name}'");
        return value;
    }

    /// <summary>The context current on the calling thread, as the fake driver sees it (zero for none).</summary>
    public IntPtr Current => Call("fake_current");

    /// <summary>The handle of a context that belongs to some other library (PyTorch, cuBLAS, a user's ILGPU).</summary>
    public IntPtr Foreign => Call("fake_foreign");

    /// <summary>Makes the foreign context current on the calling thread, as another library would have it.</summary>
    public void PushForeign() => Call("fake_push_foreign");

    /// <summary>Pops the calling thread's current context.</summary>
    public void Pop() => Call("fake_pop");

    /// <summary>Makes the next launch fault on the device: its error surfaces at the next stream synchronisation.</summary>
    public void FaultNextLaunch() => Call("fake_fault_next_launch");

    /// <summary>The last launch: <c>name grid X x Y x Z block X x Y x Z</c>.</summary>
    public string LastLaunch => Marshal.PtrToStringUTF8(Call("fake_last_launch")) ?? "";

    /// <summary>The options of the last compile of the NVRTC named <paramref name="fileName"/>.</summary>
    public string NvrtcOptions(string fileName) =>
        Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)NativeLibrary.GetExport(_nvrtcs[fileName], "fake_last_options"))()) ?? "";

    /// <summary>How many programs the NVRTC named <paramref name="fileName"/> has compiled.</summary>
    public long NvrtcCompiles(string fileName) =>
        ((delegate* unmanaged<long>)NativeLibrary.GetExport(_nvrtcs[fileName], "fake_compiles"))();

    /// <summary>Puts another fake NVRTC into the folder, as an install during the process's life would.</summary>
    public void AddNvrtc(FakeNvrtc nvrtc)
    {
        string path = Place("fake_nvrtc.c", nvrtc.FileName, $"-DMAJOR={nvrtc.Major}", $"-DMINOR={nvrtc.Minor}", $"-DNEWEST={nvrtc.Newest}");
        _nvrtcs[nvrtc.FileName] = NativeLibrary.Load(path);
    }

    /// <summary>Disposes the backend. The libraries stay loaded: buffers may still be finalised into them.</summary>
    public void Dispose() => _device?.Backend.Dispose();

    private IntPtr Call(string name) => ((delegate* unmanaged<IntPtr>)NativeLibrary.GetExport(_control, name))();

    private void Call(string name, int argument) => ((delegate* unmanaged<int, void>)NativeLibrary.GetExport(_control, name))(argument);

    /// <summary>Copies the library built from <paramref name="source"/> with <paramref name="defines"/> into this folder as <paramref name="fileName"/>.</summary>
    private string Place(string source, string fileName, params string[] defines)
    {
        string built = Built.GetOrAdd(source + " " + string.Join(' ', defines), _ => new Lazy<string>(() => Build(source, defines))).Value;
        string path = Path.Combine(Folder, fileName);
        File.Copy(built, path);
        return path;
    }

    private static string Build(string source, string[] defines)
    {
        string sourcePath = Path.Combine(AppContext.BaseDirectory, "Runtime", "Fakes", source);
        Directory.CreateDirectory(Root);
        string name = $"libnativetensor-fake-{Path.GetFileNameWithoutExtension(source)}-{Built.Count}-{Guid.NewGuid():N}.so";
        string output = Path.Combine(Root, name);
        // The soname is unique, so the loader can never hand one of these out for a request of libcuda.so.1 by name.
        string[] arguments = ["-shared", "-fPIC", "-O1", "-std=gnu11", "-Wall", "-Werror", $"-Wl,-soname,{name}", .. defines, "-o", output, sourcePath];
        ChildProcess.Check(Compiler.Value!, arguments);
        return output;
    }

    private static string? FindCompiler()
    {
        string[] folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        foreach (string compiler in new[] { "cc", "gcc", "clang", "clang-15" })
            foreach (string folder in folders)
                if (File.Exists(Path.Combine(folder, compiler))) return Path.Combine(folder, compiler);
        return null;
    }
}
