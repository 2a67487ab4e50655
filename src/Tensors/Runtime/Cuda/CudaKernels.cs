using System.Collections.Concurrent;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// One device's compiled kernels: each source in <c>kernels/</c> is built by NVRTC at its first use, loaded as a
/// <c>CUmodule</c>, and kept for the life of the process under <see cref="KernelSources.Hash"/> of its text and build
/// options. Thread-safe; a build that fails is not cached, so the next call reports the same error afresh.
/// </summary>
/// <param name="driver">The driver that loads the modules.</param>
/// <param name="selectCompiler">
/// Chooses the NVRTC and target for this device (<see cref="Nvrtc.Select"/>), at the first build; a failure is not
/// kept, so a later call chooses afresh.
/// </param>
/// <param name="describeDriver">The driver's CUDA version in words, for the message of a module the driver refuses.</param>
internal sealed unsafe class CudaKernels(CudaDriver driver, Func<(Nvrtc Compiler, Nvrtc.Target Target)> selectCompiler, Func<string> describeDriver)
    : IDisposable
{
    private readonly ConcurrentDictionary<string, Module> _byFile = new();
    private readonly Dictionary<string, Module> _byHash = [];
    private readonly object _build = new();
    private (Nvrtc Compiler, Nvrtc.Target Target)? _compiler;
    private bool _disposed;

    /// <summary>
    /// The <c>CUfunction</c> <paramref name="entry"/> of <paramref name="file"/>, building and loading the module the
    /// first time. The context must be current on the calling thread.
    /// </summary>
    public IntPtr Function(CudaContext context, string file, string entry) =>
        (_byFile.TryGetValue(file, out Module? module) ? module : Load(context, file)).Function(entry);

    private Module Load(CudaContext context, string file)
    {
        lock (_build)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_byFile.TryGetValue(file, out Module? loaded)) return loaded;
            (Nvrtc compiler, Nvrtc.Target target) = _compiler ??= selectCompiler();
            string source = KernelSources.Get(file);
            string key = KernelSources.Hash(source, target.OptionLine);
            if (!_byHash.TryGetValue(key, out Module? module))
            {
                byte[] image = compiler.Compile(source, file, target);
                module = new Module(driver, LoadImage(context, image, file, compiler, target), file);
                _byHash.Add(key, module);
            }
            _byFile[file] = module;
            return module;
        }
    }

    private CudaModuleHandle LoadImage(CudaContext context, byte[] image, string file, Nvrtc compiler, Nvrtc.Target target)
    {
        (CudaModuleHandle? module, int result) = CudaModuleHandle.Load(context, image);
        if (module is not null) return module;
        // Selection keeps NVRTC within what the driver loads, so this names both sides for whoever has to find out why.
        throw driver.Error(result, $"cuModuleLoadData({file}, {target.Architecture} {(target.IsCubin ? "CUBIN" : "PTX")})",
            $"built by {compiler}; the driver supports {describeDriver()}");
    }

    /// <summary>What the compiled <paramref name="entry"/> of <paramref name="file"/> uses per thread and block; the context must be current.</summary>
    public KernelResources Resources(CudaContext context, string file, string entry)
    {
        IntPtr function = Function(context, file, entry);
        int Read(int attribute, string what)
        {
            driver.Check(driver.cuFuncGetAttribute(out int value, attribute, function), $"cuFuncGetAttribute({entry}, {what})");
            return value;
        }
        return new KernelResources(entry,
            Read(CudaDriver.FunctionRegisters, "NUM_REGS"),
            Read(CudaDriver.FunctionLocalBytes, "LOCAL_SIZE_BYTES"),
            Read(CudaDriver.FunctionSharedBytes, "SHARED_SIZE_BYTES"),
            Read(CudaDriver.FunctionMaxThreadsPerBlock, "MAX_THREADS_PER_BLOCK"));
    }

    /// <summary>Unloads every module (each pushes its context for the call). Functions handed out before are invalid afterwards.</summary>
    public void Dispose()
    {
        lock (_build)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (Module module in _byHash.Values) module.Handle.Dispose();
            _byHash.Clear();
            _byFile.Clear();
        }
    }

    /// <summary>
    /// A loaded module and its functions. A <c>CUfunction</c> is valid while its module is loaded: the backend unloads
    /// modules only at Dispose, after every operation that could hold a function has ended.
    /// </summary>
    private sealed class Module(CudaDriver driver, CudaModuleHandle handle, string file)
    {
        private readonly ConcurrentDictionary<string, IntPtr> _functions = new();

        public CudaModuleHandle Handle { get; } = handle;

        public IntPtr Function(string entry) => _functions.TryGetValue(entry, out IntPtr function) ? function : Resolve(entry);

        private IntPtr Resolve(string entry)
        {
            driver.Check(driver.cuModuleGetFunction(out IntPtr function, Handle.DangerousGetHandle(), entry), $"cuModuleGetFunction({file}, {entry})");
            return _functions.GetOrAdd(entry, function);
        }
    }
}

/// <summary>
/// What one compiled kernel needs, as the driver reports it after loading: registers and local memory per thread
/// (local memory is where spills and unpromoted arrays go), static shared memory per block, and the most threads a
/// block of it may have (below the kernel's <c>__launch_bounds__</c> when registers run short).
/// </summary>
internal sealed record KernelResources(string Entry, int Registers, int LocalBytesPerThread, int SharedBytesPerBlock, int MaxThreadsPerBlock);
