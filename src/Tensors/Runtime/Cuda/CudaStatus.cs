using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The one place a driver or NVRTC status becomes an exception: every non-success result is thrown as a
/// <see cref="NativeTensorException"/> whose <see cref="NativeTensorException.ErrorName"/> is the API's own name for it
/// (<c>CUDA_ERROR_ILLEGAL_ADDRESS</c>, <c>NVRTC_ERROR_COMPILATION</c>), so a log line can be searched in NVIDIA's docs.
/// </summary>
internal static class CudaStatus
{
    /// <summary>Throws when <paramref name="result"/> is not CUDA_SUCCESS; <paramref name="call"/> names the driver function.</summary>
    public static void Check(int result, string call)
    {
        if (result != CudaNative.Success) throw Error(result, call);
    }

    /// <summary>The exception for a failed driver call, with the driver's error name.</summary>
    public static NativeTensorException Error(int result, string call, string? detail = null)
    {
        string name = Name(result);
        string message = $"cuda: {call} failed: {name} ({result})";
        return new NativeTensorException(detail is null ? message : $"{message}: {detail}") { ErrorName = name };
    }

    /// <summary>
    /// The driver's name for <paramref name="result"/> from <c>cuGetErrorName</c>, which knows every code the installed
    /// driver can return; a code it does not know (or a driver that cannot be asked) gets a neutral spelling.
    /// </summary>
    public static string Name(int result)
    {
        try
        {
            if (CudaNative.cuGetErrorName(result, out IntPtr text) == CudaNative.Success && text != IntPtr.Zero)
                return Marshal.PtrToStringUTF8(text) ?? $"CUresult {result}";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        return $"CUresult {result}";
    }

    /// <summary>Throws when <paramref name="result"/> is not NVRTC_SUCCESS; <paramref name="call"/> names the NVRTC function.</summary>
    public static void CheckNvrtc(int result, string call)
    {
        if (result != NvrtcNative.Success) throw NvrtcError(result, call);
    }

    /// <summary>The exception for a failed NVRTC call, with NVRTC's error name and, when there is one, the compile log.</summary>
    public static NativeTensorException NvrtcError(int result, string call, string? detail = null)
    {
        string name = NvrtcName(result);
        string message = $"nvrtc: {call} failed: {name} ({result})";
        if (result == NvrtcNative.ErrorBuiltinOperationFailure)
            message += " (NVRTC could not load libnvrtc-builtins from its own folder: the NVRTC install is incomplete)";
        return new NativeTensorException(detail is null ? message : $"{message}\n{detail}") { ErrorName = name };
    }

    /// <summary>NVRTC's name for <paramref name="result"/> from <c>nvrtcGetErrorString</c>.</summary>
    public static string NvrtcName(int result)
    {
        try
        {
            IntPtr text = NvrtcNative.nvrtcGetErrorString(result);
            if (text != IntPtr.Zero) return Marshal.PtrToStringUTF8(text) ?? $"nvrtcResult {result}";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        return $"nvrtcResult {result}";
    }
}
