using System.Runtime.InteropServices;
using System.Text;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The CUDA driver API entry points the backend uses, every one bound from the same loaded <c>libcuda.so.1</c>.
/// </summary>
/// <remarks>
/// <para>Bound by handle, not by P/Invoke, for two reasons. Every symbol comes from the file the versioned search
/// loaded, so an optional or renamed symbol can never be looked up in a different library (such as the toolkit's
/// link-time <c>libcuda.so</c>). And tests can bind a fake driver, built from C, to a backend of their own while the
/// process's real driver (or its absence) stays untouched.</para>
/// <para>cuda.h renames many functions with macros (<c>#define cuMemAlloc cuMemAlloc_v2</c>); a binary that loads the
/// driver by symbol name must ask for the renamed symbol itself, because the unsuffixed one is the 32-bit-size ABI of
/// CUDA 3.1 and earlier. Every <c>_v2</c> below is the name the header's macro produces; each unsuffixed name is one
/// the header declares without a rename. Checked against cuda.h of CUDA 12.6 (the <c>#define ... _v2</c> block and
/// the declarations) and the CUDA 13 changes (cuCtxCreate became _v4, which is why the primary context is used;
/// cuEventElapsedTime became _v2, see <see cref="cuEventElapsedTime"/>).</para>
/// <para>Types: <c>CUresult</c> and <c>CUdevice</c> are <c>int</c>; <c>CUdeviceptr</c> is <c>unsigned long long</c>
/// (<see cref="ulong"/>); handles (<c>CUcontext</c>, <c>CUmodule</c>, <c>CUfunction</c>, <c>CUstream</c>,
/// <c>CUevent</c>) are pointers (<see cref="IntPtr"/>); <c>size_t</c> is <see cref="nuint"/>. The calls with a
/// <c>CUstream</c> are the legacy-default-stream variants (not <c>_ptsz</c>), which is right because the backend always
/// passes its own stream.</para>
/// </remarks>
internal sealed unsafe partial class CudaDriver
{
    public const int Success = 0;
    public const int ErrorOutOfMemory = 2;
    /// <summary>CUDA_ERROR_STUB_LIBRARY: the library is the toolkit's link-time libcuda, not a driver.</summary>
    public const int ErrorStubLibrary = 34;

    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeMaxThreadsPerMultiprocessor = 39;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    /// <summary>CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: cuMemAllocAsync/cuMemFreeAsync work on the device.</summary>
    public const int AttributeMemoryPoolsSupported = 115;

    /// <summary>CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK.</summary>
    public const int FunctionMaxThreadsPerBlock = 0;
    /// <summary>CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: statically allocated shared memory per block.</summary>
    public const int FunctionSharedBytes = 1;
    /// <summary>CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: local memory per thread (spills and stack arrays).</summary>
    public const int FunctionLocalBytes = 3;
    /// <summary>CU_FUNC_ATTRIBUTE_NUM_REGS: registers per thread.</summary>
    public const int FunctionRegisters = 4;

    /// <summary>CU_STREAM_NON_BLOCKING: the stream does not wait for, nor block, the legacy NULL stream other libraries use.</summary>
    public const uint StreamNonBlocking = 0x1;

    /// <summary>CU_EVENT_DEFAULT: an event that records timing.</summary>
    public const uint EventDefault = 0x0;

    /// <summary>CU_EVENT_DISABLE_TIMING: a cheaper event for ordering only.</summary>
    public const uint EventDisableTiming = 0x2;

    private static readonly object SystemLock = new();
    private static CudaDriver? _system;

    private readonly delegate* unmanaged<int, byte**, int> _getErrorName;
    private readonly delegate* unmanaged<uint, int> _init;
    private readonly delegate* unmanaged<int*, int> _driverGetVersion;
    private readonly delegate* unmanaged<int*, int> _deviceGetCount;
    private readonly delegate* unmanaged<int*, int, int> _deviceGet;
    private readonly delegate* unmanaged<byte*, int, int, int> _deviceGetName;
    private readonly delegate* unmanaged<int*, int, int, int> _deviceGetAttribute;
    private readonly delegate* unmanaged<nuint*, int, int> _deviceTotalMem;
    private readonly delegate* unmanaged<IntPtr*, int, int> _primaryCtxRetain;
    private readonly delegate* unmanaged<int, int> _primaryCtxRelease;
    private readonly delegate* unmanaged<IntPtr, int> _ctxPushCurrent;
    private readonly delegate* unmanaged<IntPtr*, int> _ctxPopCurrent;
    private readonly delegate* unmanaged<nuint*, nuint*, int> _memGetInfo;
    private readonly delegate* unmanaged<ulong*, nuint, int> _memAlloc;
    private readonly delegate* unmanaged<ulong, int> _memFree;
    private readonly delegate* unmanaged<ulong*, nuint, IntPtr, int> _memAllocAsync;
    private readonly delegate* unmanaged<ulong, IntPtr, int> _memFreeAsync;
    private readonly delegate* unmanaged<IntPtr*, nuint, int> _memAllocHost;
    private readonly delegate* unmanaged<IntPtr, int> _memFreeHost;
    private readonly delegate* unmanaged<ulong, void*, nuint, IntPtr, int> _memcpyHtoDAsync;
    private readonly delegate* unmanaged<void*, ulong, nuint, IntPtr, int> _memcpyDtoHAsync;
    private readonly delegate* unmanaged<ulong, ulong, nuint, IntPtr, int> _memcpyDtoDAsync;
    private readonly delegate* unmanaged<ulong, uint, nuint, IntPtr, int> _memsetD32Async;
    private readonly delegate* unmanaged<IntPtr*, byte*, int> _moduleLoadData;
    private readonly delegate* unmanaged<IntPtr, int> _moduleUnload;
    private readonly delegate* unmanaged<IntPtr*, IntPtr, byte*, int> _moduleGetFunction;
    private readonly delegate* unmanaged<int*, int, IntPtr, int> _funcGetAttribute;
    private readonly delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> _launchKernel;
    private readonly delegate* unmanaged<IntPtr*, uint, int> _streamCreate;
    private readonly delegate* unmanaged<IntPtr, int> _streamSynchronize;
    private readonly delegate* unmanaged<IntPtr, int> _streamDestroy;
    private readonly delegate* unmanaged<IntPtr*, uint, int> _eventCreate;
    private readonly delegate* unmanaged<IntPtr, IntPtr, int> _eventRecord;
    private readonly delegate* unmanaged<IntPtr, int> _eventSynchronize;
    private readonly delegate* unmanaged<IntPtr, int> _eventDestroy;
    private readonly delegate* unmanaged<float*, IntPtr, IntPtr, int> _eventElapsedTime;

    /// <summary>Binds every entry point from <paramref name="library"/>, loaded from <paramref name="location"/>.</summary>
    /// <exception cref="EntryPointNotFoundException">A required symbol is missing: the driver is older than CUDA 4.0.</exception>
    private CudaDriver(IntPtr library, string location)
    {
        Location = location;
        IntPtr Get(string name) => Bind(library, name, required: true);
        IntPtr Optional(string name) => Bind(library, name, required: false);
        _getErrorName = (delegate* unmanaged<int, byte**, int>)Get("cuGetErrorName");
        _init = (delegate* unmanaged<uint, int>)Get("cuInit");
        _driverGetVersion = (delegate* unmanaged<int*, int>)Get("cuDriverGetVersion");
        _deviceGetCount = (delegate* unmanaged<int*, int>)Get("cuDeviceGetCount");
        _deviceGet = (delegate* unmanaged<int*, int, int>)Get("cuDeviceGet");
        _deviceGetName = (delegate* unmanaged<byte*, int, int, int>)Get("cuDeviceGetName");
        _deviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)Get("cuDeviceGetAttribute");
        // #define cuDeviceTotalMem cuDeviceTotalMem_v2, and so on for every _v2 below.
        _deviceTotalMem = (delegate* unmanaged<nuint*, int, int>)Get("cuDeviceTotalMem_v2");
        _primaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)Get("cuDevicePrimaryCtxRetain");
        _primaryCtxRelease = (delegate* unmanaged<int, int>)Get("cuDevicePrimaryCtxRelease_v2");
        _ctxPushCurrent = (delegate* unmanaged<IntPtr, int>)Get("cuCtxPushCurrent_v2");
        _ctxPopCurrent = (delegate* unmanaged<IntPtr*, int>)Get("cuCtxPopCurrent_v2");
        _memGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)Get("cuMemGetInfo_v2");
        _memAlloc = (delegate* unmanaged<ulong*, nuint, int>)Get("cuMemAlloc_v2");
        _memFree = (delegate* unmanaged<ulong, int>)Get("cuMemFree_v2");
        // CUDA 11.2's stream-ordered allocator; born with 64-bit sizes, so no _v2.
        _memAllocAsync = (delegate* unmanaged<ulong*, nuint, IntPtr, int>)Optional("cuMemAllocAsync");
        _memFreeAsync = (delegate* unmanaged<ulong, IntPtr, int>)Optional("cuMemFreeAsync");
        _memAllocHost = (delegate* unmanaged<IntPtr*, nuint, int>)Get("cuMemAllocHost_v2");
        _memFreeHost = (delegate* unmanaged<IntPtr, int>)Get("cuMemFreeHost");   // never renamed
        // #define cuMemcpyHtoDAsync __CUDA_API_PTSZ(cuMemcpyHtoDAsync_v2), likewise DtoH and DtoD.
        _memcpyHtoDAsync = (delegate* unmanaged<ulong, void*, nuint, IntPtr, int>)Get("cuMemcpyHtoDAsync_v2");
        _memcpyDtoHAsync = (delegate* unmanaged<void*, ulong, nuint, IntPtr, int>)Get("cuMemcpyDtoHAsync_v2");
        _memcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, IntPtr, int>)Get("cuMemcpyDtoDAsync_v2");
        // The async memsets were born with a 64-bit CUdeviceptr; only the synchronous cuMemsetD32 was renamed.
        _memsetD32Async = (delegate* unmanaged<ulong, uint, nuint, IntPtr, int>)Get("cuMemsetD32Async");
        _moduleLoadData = (delegate* unmanaged<IntPtr*, byte*, int>)Get("cuModuleLoadData");
        _moduleUnload = (delegate* unmanaged<IntPtr, int>)Get("cuModuleUnload");
        _moduleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)Get("cuModuleGetFunction");
        _funcGetAttribute = (delegate* unmanaged<int*, int, IntPtr, int>)Get("cuFuncGetAttribute");
        _launchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)Get("cuLaunchKernel");
        _streamCreate = (delegate* unmanaged<IntPtr*, uint, int>)Get("cuStreamCreate");
        _streamSynchronize = (delegate* unmanaged<IntPtr, int>)Get("cuStreamSynchronize");
        _streamDestroy = (delegate* unmanaged<IntPtr, int>)Get("cuStreamDestroy_v2");
        _eventCreate = (delegate* unmanaged<IntPtr*, uint, int>)Get("cuEventCreate");
        _eventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)Get("cuEventRecord");
        _eventSynchronize = (delegate* unmanaged<IntPtr, int>)Get("cuEventSynchronize");
        _eventDestroy = (delegate* unmanaged<IntPtr, int>)Get("cuEventDestroy_v2");
        // CUDA 12.8 added cuEventElapsedTime_v2 and CUDA 13's header declares only that one, while drivers older
        // than 12.8 (JetPack 6, for one) export only the unsuffixed symbol: the newer first, from this same library.
        IntPtr elapsed = Optional("cuEventElapsedTime_v2");
        if (elapsed == IntPtr.Zero) elapsed = Optional("cuEventElapsedTime");
        _eventElapsedTime = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)elapsed;
    }

    /// <summary>Where this driver was loaded from: a file name the loader found, or a path.</summary>
    public string Location { get; }

    /// <summary>Whether the driver exports the stream-ordered allocator (CUDA 11.2 and later).</summary>
    public bool HasStreamOrderedAllocator => _memAllocAsync != null && _memFreeAsync != null;

    /// <summary>
    /// The machine's driver, found by <see cref="NativeLibraries.CudaDriver"/>. Only a driver that loaded is kept: a
    /// failure is reported afresh on the next call, so a driver installed later in the process's life is found.
    /// </summary>
    /// <exception cref="DllNotFoundException">No driver library loads; the message says where it was looked for.</exception>
    /// <exception cref="EntryPointNotFoundException">The driver is too old (see the constructor).</exception>
    public static CudaDriver System
    {
        get
        {
            if (Volatile.Read(ref _system) is { } loaded) return loaded;
            lock (SystemLock)
                return _system ??= Load(NativeLibraries.CudaDriver);
        }
    }

    /// <summary>
    /// The driver at the first location of <paramref name="search"/> that loads and is not the CUDA toolkit's
    /// link-time <c>libcuda.so</c>, which answers every call with CUDA_ERROR_STUB_LIBRARY.
    /// </summary>
    /// <exception cref="DllNotFoundException">None loads, or only link-time libraries do; the message says where it was looked for.</exception>
    /// <exception cref="EntryPointNotFoundException">The library lacks a required entry point.</exception>
    public static CudaDriver Load(LibrarySearch search)
    {
        var linkOnly = new List<string>();
        foreach (string location in search.Locations())
        {
            if (!LibrarySearch.TryLoad(location, out IntPtr library)) continue;
            var driver = new CudaDriver(library, location);
            if (driver.cuInit(0) != ErrorStubLibrary) return driver;
            linkOnly.Add(location);
        }
        string found = linkOnly.Count == 0 ? "" : $"; only the CUDA toolkit's link-time libcuda loaded ({string.Join(", ", linkOnly)}), which is for linking, not running";
        throw new DllNotFoundException($"{search.What} was not found; looked for {search.Description}{found}");
    }

    private static IntPtr Bind(IntPtr library, string name, bool required)
    {
        if (NativeLibrary.TryGetExport(library, name, out IntPtr entry)) return entry;
        if (required) throw new EntryPointNotFoundException($"the CUDA driver does not export {name}");
        return IntPtr.Zero;
    }

    // CUresult cuGetErrorName(CUresult error, const char **pStr);
    public int cuGetErrorName(int error, out IntPtr name)
    {
        byte* text = null;
        int result = _getErrorName(error, &text);
        name = (IntPtr)text;
        return result;
    }

    // CUresult cuInit(unsigned int Flags);
    public int cuInit(uint flags) => _init(flags);

    // CUresult cuDriverGetVersion(int *driverVersion);
    public int cuDriverGetVersion(out int version)
    {
        int value = 0;
        int result = _driverGetVersion(&value);
        version = value;
        return result;
    }

    // CUresult cuDeviceGetCount(int *count);
    public int cuDeviceGetCount(out int count)
    {
        int value = 0;
        int result = _deviceGetCount(&value);
        count = value;
        return result;
    }

    // CUresult cuDeviceGet(CUdevice *device, int ordinal);
    public int cuDeviceGet(out int device, int ordinal)
    {
        int value = 0;
        int result = _deviceGet(&value, ordinal);
        device = value;
        return result;
    }

    // CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
    public int cuDeviceGetName(byte* name, int length, int device) => _deviceGetName(name, length, device);

    // CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev);
    public int cuDeviceGetAttribute(out int value, int attribute, int device)
    {
        int read = 0;
        int result = _deviceGetAttribute(&read, attribute, device);
        value = read;
        return result;
    }

    // CUresult cuDeviceTotalMem(size_t *bytes, CUdevice dev);
    public int cuDeviceTotalMem(out nuint bytes, int device)
    {
        nuint value = 0;
        int result = _deviceTotalMem(&value, device);
        bytes = value;
        return result;
    }

    // CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
    public int cuDevicePrimaryCtxRetain(out IntPtr context, int device)
    {
        IntPtr value = IntPtr.Zero;
        int result = _primaryCtxRetain(&value, device);
        context = value;
        return result;
    }

    // CUresult cuDevicePrimaryCtxRelease(CUdevice dev);
    public int cuDevicePrimaryCtxRelease(int device) => _primaryCtxRelease(device);

    // CUresult cuCtxPushCurrent(CUcontext ctx);
    public int cuCtxPushCurrent(IntPtr context) => _ctxPushCurrent(context);

    // CUresult cuCtxPopCurrent(CUcontext *pctx);
    public int cuCtxPopCurrent(out IntPtr context)
    {
        IntPtr value = IntPtr.Zero;
        int result = _ctxPopCurrent(&value);
        context = value;
        return result;
    }

    // CUresult cuMemGetInfo(size_t *free, size_t *total);
    public int cuMemGetInfo(out nuint free, out nuint total)
    {
        nuint available = 0, all = 0;
        int result = _memGetInfo(&available, &all);
        free = available;
        total = all;
        return result;
    }

    // CUresult cuMemAlloc(CUdeviceptr *dptr, size_t bytesize);
    public int cuMemAlloc(out ulong pointer, nuint bytes)
    {
        ulong value = 0;
        int result = _memAlloc(&value, bytes);
        pointer = value;
        return result;
    }

    // CUresult cuMemFree(CUdeviceptr dptr);
    public int cuMemFree(ulong pointer) => _memFree(pointer);

    // CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);   (only if HasStreamOrderedAllocator)
    public int cuMemAllocAsync(out ulong pointer, nuint bytes, IntPtr stream)
    {
        ulong value = 0;
        int result = _memAllocAsync(&value, bytes, stream);
        pointer = value;
        return result;
    }

    // CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream);   (only if HasStreamOrderedAllocator)
    public int cuMemFreeAsync(ulong pointer, IntPtr stream) => _memFreeAsync(pointer, stream);

    // CUresult cuMemAllocHost(void **pp, size_t bytesize);
    public int cuMemAllocHost(out IntPtr pointer, nuint bytes)
    {
        IntPtr value = IntPtr.Zero;
        int result = _memAllocHost(&value, bytes);
        pointer = value;
        return result;
    }

    // CUresult cuMemFreeHost(void *p);
    public int cuMemFreeHost(IntPtr pointer) => _memFreeHost(pointer);

    // CUresult cuMemcpyHtoDAsync(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream);
    public int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, IntPtr stream) => _memcpyHtoDAsync(destination, source, bytes, stream);

    // CUresult cuMemcpyDtoHAsync(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
    public int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, IntPtr stream) => _memcpyDtoHAsync(destination, source, bytes, stream);

    // CUresult cuMemcpyDtoDAsync(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
    public int cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, IntPtr stream) => _memcpyDtoDAsync(destination, source, bytes, stream);

    // CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream);
    public int cuMemsetD32Async(ulong destination, uint value, nuint count, IntPtr stream) => _memsetD32Async(destination, value, count, stream);

    // CUresult cuModuleLoadData(CUmodule *module, const void *image);
    public int cuModuleLoadData(out IntPtr module, byte* image)
    {
        IntPtr value = IntPtr.Zero;
        int result = _moduleLoadData(&value, image);
        module = value;
        return result;
    }

    // CUresult cuModuleUnload(CUmodule hmod);
    public int cuModuleUnload(IntPtr module) => _moduleUnload(module);

    // CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name);
    public int cuModuleGetFunction(out IntPtr function, IntPtr module, string name)
    {
        IntPtr value = IntPtr.Zero;
        int length = Encoding.UTF8.GetByteCount(name);
        Span<byte> text = length < 256 ? stackalloc byte[length + 1] : new byte[length + 1];
        Encoding.UTF8.GetBytes(name, text);
        text[length] = 0;
        int result;
        fixed (byte* entry = text) result = _moduleGetFunction(&value, module, entry);
        function = value;
        return result;
    }

    // CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc);
    public int cuFuncGetAttribute(out int value, int attribute, IntPtr function)
    {
        int read = 0;
        int result = _funcGetAttribute(&read, attribute, function);
        value = read;
        return result;
    }

    // CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
    //     unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes,
    //     CUstream hStream, void **kernelParams, void **extra);
    public int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, IntPtr stream, void** kernelParams, void** extra) =>
        _launchKernel(function, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedMemoryBytes, stream, kernelParams, extra);

    // CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags);
    public int cuStreamCreate(out IntPtr stream, uint flags)
    {
        IntPtr value = IntPtr.Zero;
        int result = _streamCreate(&value, flags);
        stream = value;
        return result;
    }

    // CUresult cuStreamSynchronize(CUstream hStream);
    public int cuStreamSynchronize(IntPtr stream) => _streamSynchronize(stream);

    // CUresult cuStreamDestroy(CUstream hStream);
    public int cuStreamDestroy(IntPtr stream) => _streamDestroy(stream);

    // CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags);
    public int cuEventCreate(out IntPtr @event, uint flags)
    {
        IntPtr value = IntPtr.Zero;
        int result = _eventCreate(&value, flags);
        @event = value;
        return result;
    }

    // CUresult cuEventRecord(CUevent hEvent, CUstream hStream);
    public int cuEventRecord(IntPtr @event, IntPtr stream) => _eventRecord(@event, stream);

    // CUresult cuEventSynchronize(CUevent hEvent);
    public int cuEventSynchronize(IntPtr @event) => _eventSynchronize(@event);

    // CUresult cuEventDestroy(CUevent hEvent);
    public int cuEventDestroy(IntPtr @event) => _eventDestroy(@event);

    /// <summary>
    /// <c>CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)</c>, the same signature
    /// under <c>cuEventElapsedTime_v2</c> and the unsuffixed symbol, whichever this driver exports.
    /// </summary>
    /// <exception cref="NativeTensorException">The driver exports neither symbol.</exception>
    public int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end)
    {
        if (_eventElapsedTime == null)
            throw new NativeTensorException($"cuda: the driver at {Location} exports neither cuEventElapsedTime_v2 nor cuEventElapsedTime, so device timings are unavailable");
        float value = 0;
        int result = _eventElapsedTime(&value, start, end);
        milliseconds = value;
        return result;
    }
}
