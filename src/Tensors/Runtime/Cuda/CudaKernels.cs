using System.Collections.Concurrent;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// One device's compiled kernels: each source in <c>kernels/</c> is built by NVRTC at its first use, loaded as a
/// <c>CUmodule</c>, and kept for the life of the process under <see cref="KernelSources.Hash"/> of its text and build
/// options. Thread-safe; a build that fails is not cached, so the next call reports the same error afresh.
/// </summary>
/// <param name="capability">The device's compute capability as major * 10 + minor, e.g. 90 for sm_90.</param>
/// <param name="describeDriver">The driver's CUDA version in words, for the message of a module the driver refuses.</param>
internal sealed unsafe class CudaKernels(int capability, Func<string> describeDriver) : IDisposable
{
    private readonly ConcurrentDictionary<string, Module> _byFile = new();
    private readonly Dictionary<string, Module> _byHash = [];
    private readonly object _build = new();
    private NvrtcCompiler.Target? _target;
    private bool _disposed;

    /// <summary>
    /// The <c>CUfunction</c> <paramref name="entry"/> of <paramref name="file"/>, building and loading the module the
    /// first time. The context must be current on the calling thread.
    /// </summary>
    public IntPtr Function(string file, string entry) =>
        (_byFile.TryGetValue(file, out Module? module) ? module : Load(file)).Function(entry);

    private Module Load(string file)
    {
        lock (_build)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_byFile.TryGetValue(file, out Module? loaded)) return loaded;
            _target ??= NvrtcCompiler.TargetFor(capability);
            string source = KernelSources.Get(file);
            string key = KernelSources.Hash(source, _target.OptionLine);
            if (!_byHash.TryGetValue(key, out Module? module))
            {
                byte[] image = NvrtcCompiler.Compile(source, file, _target);
                module = new Module(LoadImage(image, file), file);
                _byHash.Add(key, module);
            }
            _byFile[file] = module;
            return module;
        }
    }

    private IntPtr LoadImage(byte[] image, string file)
    {
        int result;
        IntPtr module;
        fixed (byte* bytes = image) result = CudaNative.cuModuleLoadData(out module, bytes);
        if (result == CudaNative.Success) return module;
        // The usual cause is an NVRTC newer than the driver: its CUBIN or PTX then names an ISA the driver predates.
        var (major, minor) = NvrtcCompiler.Version;
        throw CudaStatus.Error(result, $"cuModuleLoadData({file}, {_target!.Architecture} {(_target.IsCubin ? "CUBIN" : "PTX")})",
            $"built by NVRTC {major}.{minor}; the driver supports {describeDriver()} (an NVRTC newer than the driver makes images it cannot load)");
    }

    /// <summary>Unloads every module; the context must be current. Functions handed out before are invalid afterwards.</summary>
    public void Dispose()
    {
        lock (_build)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (Module module in _byHash.Values) CudaNative.cuModuleUnload(module.Handle);
            _byHash.Clear();
            _byFile.Clear();
        }
    }

    private sealed class Module(IntPtr handle, string file)
    {
        private readonly ConcurrentDictionary<string, IntPtr> _functions = new();

        public IntPtr Handle { get; } = handle;

        public IntPtr Function(string entry) => _functions.TryGetValue(entry, out IntPtr function) ? function : Resolve(entry);

        private IntPtr Resolve(string entry)
        {
            CudaStatus.Check(CudaNative.cuModuleGetFunction(out IntPtr function, Handle, entry), $"cuModuleGetFunction({file}, {entry})");
            return _functions.GetOrAdd(entry, function);
        }
    }
}
