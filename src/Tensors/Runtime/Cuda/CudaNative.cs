using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The CUDA driver API entry points the backend uses, bound by their exported symbol names in <c>libcuda.so.1</c>.
/// </summary>
/// <remarks>
/// <para>cuda.h renames many functions with macros (<c>#define cuMemAlloc cuMemAlloc_v2</c>); a binary that loads the
/// driver by symbol name must ask for the renamed symbol itself, because the unsuffixed one is the 32-bit-size ABI of
/// CUDA 3.1 and earlier. Every <c>_v2</c> below is the name the header's macro produces; each unsuffixed name is one
/// the header declares without a rename. Checked against cuda.h of CUDA 12.6 (the <c>#define ... _v2</c> block and
/// the declarations) and the CUDA 13 changes (cuCtxCreate became _v4, which is why the primary context is used;
/// cuEventElapsedTime became _v2, resolved at run time in <see cref="EventElapsedTime"/>).</para>
/// <para>Types: <c>CUresult</c> and <c>CUdevice</c> are <c>int</c>; <c>CUdeviceptr</c> is <c>unsigned long long</c>
/// (<see cref="ulong"/>); handles (<c>CUcontext</c>, <c>CUmodule</c>, <c>CUfunction</c>, <c>CUstream</c>,
/// <c>CUevent</c>) are pointers (<see cref="IntPtr"/>); <c>size_t</c> is <see cref="nuint"/>.</para>
/// <para>The calls with a <c>CUstream</c> are the legacy-default-stream variants (not <c>_ptsz</c>), which is right
/// because the backend always passes its own stream.</para>
/// </remarks>
internal static unsafe partial class CudaNative
{
    public const int Success = 0;
    public const int ErrorOutOfMemory = 2;

    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeMaxThreadsPerMultiprocessor = 39;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;

    /// <summary>CU_STREAM_NON_BLOCKING: the stream does not wait for, nor block, the legacy NULL stream other libraries use.</summary>
    public const uint StreamNonBlocking = 0x1;

    /// <summary>CU_EVENT_DEFAULT: an event that records timing.</summary>
    public const uint EventDefault = 0x0;

    /// <summary>CU_EVENT_DISABLE_TIMING: a cheaper event for ordering only.</summary>
    public const uint EventDisableTiming = 0x2;

    // CUresult cuGetErrorName(CUresult error, const char **pStr);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuGetErrorName")]
    public static partial int cuGetErrorName(int error, out IntPtr name);

    // CUresult cuInit(unsigned int Flags);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuInit")]
    public static partial int cuInit(uint flags);

    // CUresult cuDriverGetVersion(int *driverVersion);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDriverGetVersion")]
    public static partial int cuDriverGetVersion(out int version);

    // CUresult cuDeviceGetCount(int *count);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDeviceGetCount")]
    public static partial int cuDeviceGetCount(out int count);

    // CUresult cuDeviceGet(CUdevice *device, int ordinal);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDeviceGet")]
    public static partial int cuDeviceGet(out int device, int ordinal);

    // CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDeviceGetName")]
    public static partial int cuDeviceGetName(byte* name, int length, int device);

    // CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDeviceGetAttribute")]
    public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);

    // #define cuDeviceTotalMem cuDeviceTotalMem_v2 — CUresult cuDeviceTotalMem(size_t *bytes, CUdevice dev);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial int cuDeviceTotalMem(out nuint bytes, int device);

    // CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDevicePrimaryCtxRetain")]
    public static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);

    // #define cuDevicePrimaryCtxRelease cuDevicePrimaryCtxRelease_v2 — CUresult cuDevicePrimaryCtxRelease(CUdevice dev);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    public static partial int cuDevicePrimaryCtxRelease(int device);

    // CUresult cuCtxSetCurrent(CUcontext ctx);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuCtxSetCurrent")]
    public static partial int cuCtxSetCurrent(IntPtr context);

    // #define cuMemGetInfo cuMemGetInfo_v2 — CUresult cuMemGetInfo(size_t *free, size_t *total);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemGetInfo_v2")]
    public static partial int cuMemGetInfo(out nuint free, out nuint total);

    // #define cuMemAlloc cuMemAlloc_v2 — CUresult cuMemAlloc(CUdeviceptr *dptr, size_t bytesize);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemAlloc_v2")]
    public static partial int cuMemAlloc(out ulong pointer, nuint bytes);

    // #define cuMemFree cuMemFree_v2 — CUresult cuMemFree(CUdeviceptr dptr);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemFree_v2")]
    public static partial int cuMemFree(ulong pointer);

    // #define cuMemAllocHost cuMemAllocHost_v2 — CUresult cuMemAllocHost(void **pp, size_t bytesize);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemAllocHost_v2")]
    public static partial int cuMemAllocHost(out IntPtr pointer, nuint bytes);

    // CUresult cuMemFreeHost(void *p);   (no _v2: the header never renames it)
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemFreeHost")]
    public static partial int cuMemFreeHost(IntPtr pointer);

    // #define cuMemcpyHtoDAsync __CUDA_API_PTSZ(cuMemcpyHtoDAsync_v2)
    // CUresult cuMemcpyHtoDAsync(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, IntPtr stream);

    // #define cuMemcpyDtoHAsync __CUDA_API_PTSZ(cuMemcpyDtoHAsync_v2)
    // CUresult cuMemcpyDtoHAsync(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, IntPtr stream);

    // #define cuMemcpyDtoDAsync __CUDA_API_PTSZ(cuMemcpyDtoDAsync_v2)
    // CUresult cuMemcpyDtoDAsync(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial int cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, IntPtr stream);

    // CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream);
    // (no _v2: the async memsets were born with 64-bit CUdeviceptr; the synchronous cuMemsetD32 is the one renamed)
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuMemsetD32Async")]
    public static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, IntPtr stream);

    // CUresult cuModuleLoadData(CUmodule *module, const void *image);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuModuleLoadData")]
    public static partial int cuModuleLoadData(out IntPtr module, byte* image);

    // CUresult cuModuleUnload(CUmodule hmod);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuModuleUnload")]
    public static partial int cuModuleUnload(IntPtr module);

    // CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuModuleGetFunction", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);

    // CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
    //     unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes,
    //     CUstream hStream, void **kernelParams, void **extra);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuLaunchKernel")]
    public static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, IntPtr stream, void** kernelParams, void** extra);

    // CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuStreamCreate")]
    public static partial int cuStreamCreate(out IntPtr stream, uint flags);

    // CUresult cuStreamSynchronize(CUstream hStream);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuStreamSynchronize")]
    public static partial int cuStreamSynchronize(IntPtr stream);

    // #define cuStreamDestroy cuStreamDestroy_v2 — CUresult cuStreamDestroy(CUstream hStream);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuStreamDestroy_v2")]
    public static partial int cuStreamDestroy(IntPtr stream);

    // CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuEventCreate")]
    public static partial int cuEventCreate(out IntPtr @event, uint flags);

    // CUresult cuEventRecord(CUevent hEvent, CUstream hStream);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuEventRecord")]
    public static partial int cuEventRecord(IntPtr @event, IntPtr stream);

    // CUresult cuEventSynchronize(CUevent hEvent);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuEventSynchronize")]
    public static partial int cuEventSynchronize(IntPtr @event);

    // #define cuEventDestroy cuEventDestroy_v2 — CUresult cuEventDestroy(CUevent hEvent);
    [LibraryImport(NativeLibraries.Cuda, EntryPoint = "cuEventDestroy_v2")]
    public static partial int cuEventDestroy(IntPtr @event);

    private static readonly Lazy<IntPtr> ElapsedTimeEntry = new(ResolveElapsedTime);

    /// <summary>
    /// <c>CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)</c>, same signature under
    /// both symbols. CUDA 12.8 added <c>cuEventElapsedTime_v2</c> and CUDA 13's header declares only that one, while
    /// drivers older than 12.8 (JetPack 6, for one) export only the unsuffixed symbol; so the newer is looked up
    /// first and the older is the fallback.
    /// </summary>
    public static int EventElapsedTime(out float milliseconds, IntPtr start, IntPtr end)
    {
        var entry = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)ElapsedTimeEntry.Value;
        float ms;
        int result = entry(&ms, start, end);
        milliseconds = ms;
        return result;
    }

    private static IntPtr ResolveElapsedTime()
    {
        IntPtr library = NativeLibrary.Load(NativeLibraries.Cuda, typeof(CudaNative).Assembly, null);
        if (NativeLibrary.TryGetExport(library, "cuEventElapsedTime_v2", out IntPtr entry)) return entry;
        return NativeLibrary.GetExport(library, "cuEventElapsedTime");
    }
}
