using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The one place a driver status becomes an exception: every non-success result is thrown as a
/// <see cref="NativeTensorException"/> whose <see cref="NativeTensorException.ErrorName"/> is the driver's own name for
/// it (<c>CUDA_ERROR_ILLEGAL_ADDRESS</c>), so a log line can be searched in NVIDIA's docs.
/// </summary>
internal sealed partial class CudaDriver
{
    /// <summary>Throws when <paramref name="result"/> is not CUDA_SUCCESS; <paramref name="call"/> names the driver function.</summary>
    public void Check(int result, string call)
    {
        if (result != Success) throw Error(result, call);
    }

    /// <summary>The exception for a failed driver call, with the driver's error name.</summary>
    public NativeTensorException Error(int result, string call, string? detail = null)
    {
        string name = ErrorName(result);
        string message = $"cuda: {call} failed: {name} ({result})";
        return new NativeTensorException(detail is null ? message : $"{message}: {detail}") { ErrorName = name };
    }

    /// <summary>
    /// The driver's name for <paramref name="result"/> from <c>cuGetErrorName</c>, which knows every code the installed
    /// driver can return; a code it does not know gets a neutral spelling.
    /// </summary>
    public string ErrorName(int result) =>
        cuGetErrorName(result, out IntPtr text) == Success && text != IntPtr.Zero
            ? Marshal.PtrToStringUTF8(text) ?? UnknownName(result)
            : UnknownName(result);

    /// <summary>How a code is spelled where no driver can name it.</summary>
    public static string UnknownName(int result) => $"CUresult {result}";
}
