using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The NVRTC entry points the backend uses (<c>libnvrtc.so.13</c> or <c>.12</c>), checked against nvrtc.h of CUDA 12.6;
/// NVRTC has no versioned symbol names, and these have kept their signatures from CUDA 11.2 through 13.
/// <c>nvrtcResult</c> is an <c>int</c> enum and <c>nvrtcProgram</c> a pointer. The library is loaded the first time one
/// of these is called, which the backend does only when it first needs a kernel.
/// </summary>
internal static unsafe partial class NvrtcNative
{
    public const int Success = 0;
    public const int ErrorCompilation = 6;
    public const int ErrorBuiltinOperationFailure = 7;

    // const char *nvrtcGetErrorString(nvrtcResult result);   (returns the enum's name, e.g. "NVRTC_ERROR_COMPILATION")
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetErrorString")]
    public static partial IntPtr nvrtcGetErrorString(int result);

    // nvrtcResult nvrtcVersion(int *major, int *minor);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcVersion")]
    public static partial int nvrtcVersion(out int major, out int minor);

    // nvrtcResult nvrtcGetNumSupportedArchs(int *numArchs);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetNumSupportedArchs")]
    public static partial int nvrtcGetNumSupportedArchs(out int count);

    // nvrtcResult nvrtcGetSupportedArchs(int *supportedArchs);   (ascending, e.g. 50, 52, ..., 90, 100, 120)
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetSupportedArchs")]
    public static partial int nvrtcGetSupportedArchs(int* architectures);

    // nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
    //                                const char * const *headers, const char * const *includeNames);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcCreateProgram")]
    public static partial int nvrtcCreateProgram(out IntPtr program, byte* source, byte* name, int headerCount, byte** headers, byte** includeNames);

    // nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcDestroyProgram")]
    public static partial int nvrtcDestroyProgram(ref IntPtr program);

    // nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char * const *options);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcCompileProgram")]
    public static partial int nvrtcCompileProgram(IntPtr program, int optionCount, byte** options);

    // nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet);   (includes the trailing NUL)
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetProgramLogSize")]
    public static partial int nvrtcGetProgramLogSize(IntPtr program, out nuint size);

    // nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetProgramLog")]
    public static partial int nvrtcGetProgramLog(IntPtr program, byte* log);

    // nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet);   (0 when -arch named a virtual compute_XX)
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetCUBINSize")]
    public static partial int nvrtcGetCUBINSize(IntPtr program, out nuint size);

    // nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetCUBIN")]
    public static partial int nvrtcGetCUBIN(IntPtr program, byte* cubin);

    // nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet);   (includes the trailing NUL)
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetPTXSize")]
    public static partial int nvrtcGetPTXSize(IntPtr program, out nuint size);

    // nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx);
    [LibraryImport(NativeLibraries.Nvrtc, EntryPoint = "nvrtcGetPTX")]
    public static partial int nvrtcGetPTX(IntPtr program, byte* ptx);
}
