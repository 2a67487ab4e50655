using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// One loaded NVRTC library (<c>libnvrtc.so.13</c>, <c>.12</c>, ...): its entry points, bound from that library's
/// handle, its version and the architectures it can build for. Which one the backend uses is chosen against the
/// driver's version (<see cref="Select"/>). The entry points were checked against nvrtc.h of CUDA 12.6; NVRTC has no
/// versioned symbol names, and these have kept their signatures from CUDA 11.2 through 13. <c>nvrtcResult</c> is an
/// <c>int</c> enum and <c>nvrtcProgram</c> a pointer.
/// </summary>
internal sealed unsafe partial class Nvrtc
{
    public const int Success = 0;
    public const int ErrorBuiltinOperationFailure = 7;

    private readonly delegate* unmanaged<int, IntPtr> _getErrorString;
    private readonly delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> _createProgram;
    private readonly delegate* unmanaged<IntPtr*, int> _destroyProgram;
    private readonly delegate* unmanaged<IntPtr, int, byte**, int> _compileProgram;
    private readonly delegate* unmanaged<IntPtr, nuint*, int> _getProgramLogSize;
    private readonly delegate* unmanaged<IntPtr, byte*, int> _getProgramLog;
    private readonly delegate* unmanaged<IntPtr, nuint*, int> _getCubinSize;
    private readonly delegate* unmanaged<IntPtr, byte*, int> _getCubin;
    private readonly delegate* unmanaged<IntPtr, nuint*, int> _getPtxSize;
    private readonly delegate* unmanaged<IntPtr, byte*, int> _getPtx;

    /// <summary>Binds every entry point of <paramref name="library"/> and reads its version and architectures.</summary>
    /// <exception cref="EntryPointNotFoundException">The library lacks an entry point (NVRTC older than 11.2).</exception>
    private Nvrtc(IntPtr library, string location)
    {
        Location = location;
        IntPtr Get(string name) => NativeLibrary.TryGetExport(library, name, out IntPtr entry)
            ? entry
            : throw new EntryPointNotFoundException($"{location} does not export {name}");
        // const char *nvrtcGetErrorString(nvrtcResult result);   (the enum's name, e.g. "NVRTC_ERROR_COMPILATION")
        _getErrorString = (delegate* unmanaged<int, IntPtr>)Get("nvrtcGetErrorString");
        // nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
        //                                const char * const *headers, const char * const *includeNames);
        _createProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)Get("nvrtcCreateProgram");
        // nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog);
        _destroyProgram = (delegate* unmanaged<IntPtr*, int>)Get("nvrtcDestroyProgram");
        // nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char * const *options);
        _compileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)Get("nvrtcCompileProgram");
        // nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet);   (includes the trailing NUL)
        _getProgramLogSize = (delegate* unmanaged<IntPtr, nuint*, int>)Get("nvrtcGetProgramLogSize");
        // nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log);
        _getProgramLog = (delegate* unmanaged<IntPtr, byte*, int>)Get("nvrtcGetProgramLog");
        // nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet);   (0 when -arch named a virtual compute_XX)
        _getCubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)Get("nvrtcGetCUBINSize");
        // nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin);
        _getCubin = (delegate* unmanaged<IntPtr, byte*, int>)Get("nvrtcGetCUBIN");
        // nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet);   (includes the trailing NUL)
        _getPtxSize = (delegate* unmanaged<IntPtr, nuint*, int>)Get("nvrtcGetPTXSize");
        // nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx);
        _getPtx = (delegate* unmanaged<IntPtr, byte*, int>)Get("nvrtcGetPTX");

        // nvrtcResult nvrtcVersion(int *major, int *minor);
        var version = (delegate* unmanaged<int*, int*, int>)Get("nvrtcVersion");
        // nvrtcResult nvrtcGetNumSupportedArchs(int *numArchs);
        var count = (delegate* unmanaged<int*, int>)Get("nvrtcGetNumSupportedArchs");
        // nvrtcResult nvrtcGetSupportedArchs(int *supportedArchs);   (ascending, e.g. 50, 52, ..., 90, 100, 120)
        var list = (delegate* unmanaged<int*, int>)Get("nvrtcGetSupportedArchs");
        int major = 0, minor = 0, architectures = 0;
        Check(version(&major, &minor), "nvrtcVersion");
        Check(count(&architectures), "nvrtcGetNumSupportedArchs");
        var known = new int[architectures];
        fixed (int* into = known)
            if (architectures > 0) Check(list(into), "nvrtcGetSupportedArchs");
        Version = (major, minor);
        Architectures = known;
    }

    /// <summary>Where this library was loaded from: a file name the loader found, or a path.</summary>
    public string Location { get; }

    /// <summary>The NVRTC version, e.g. (12, 6).</summary>
    public (int Major, int Minor) Version { get; }

    /// <summary>The real architectures it can build CUBIN for, as major * 10 + minor, ascending.</summary>
    public IReadOnlyList<int> Architectures { get; }

    /// <summary>The version and place, for messages: <c>NVRTC 12.6 (libnvrtc.so.12)</c>.</summary>
    public override string ToString() => $"NVRTC {Version.Major}.{Version.Minor} ({Location})";

    /// <summary>Throws when <paramref name="result"/> is not NVRTC_SUCCESS; <paramref name="call"/> names the NVRTC function.</summary>
    public void Check(int result, string call)
    {
        if (result != Success) throw Error(result, call);
    }

    /// <summary>The exception for a failed NVRTC call, with NVRTC's error name and, when there is one, the compile log.</summary>
    public NativeTensorException Error(int result, string call, string? detail = null)
    {
        IntPtr text = _getErrorString(result);
        string name = text == IntPtr.Zero ? $"nvrtcResult {result}" : Marshal.PtrToStringUTF8(text) ?? $"nvrtcResult {result}";
        string message = $"nvrtc: {call} failed: {name} ({result})";
        if (result == ErrorBuiltinOperationFailure)
            message += " (NVRTC could not load libnvrtc-builtins from its own folder: the NVRTC install is incomplete)";
        return new NativeTensorException(detail is null ? message : $"{message}\n{detail}") { ErrorName = name };
    }
}
