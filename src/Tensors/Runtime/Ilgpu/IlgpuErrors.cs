using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace NativeTensor.Runtime.Ilgpu;

/// <summary>
/// Turns what ILGPU throws into <see cref="NativeTensorException"/>, the one failure type of every backend: ILGPU's own
/// message, and as <see cref="NativeTensorException.ErrorName"/> the driver's error name where a driver failed
/// (<c>CUDA_ERROR_ILLEGAL_ADDRESS</c>, an OpenCL <c>CLError</c>) or else ILGPU's exception type
/// (<c>InternalCompilerException</c>, <c>NotSupportedIntrinsicException</c>...).
/// </summary>
internal static class IlgpuErrors
{
    /// <summary>The exception to throw for <paramref name="error"/>, raised while doing <paramref name="what"/> on <paramref name="device"/>.</summary>
    public static NativeTensorException From(Exception error, string device, string what) => error switch
    {
        NativeTensorException known => known,
        CudaException cuda => new NativeTensorException($"ilgpu: '{device}': {what} failed: {cuda.Error}: {cuda.Message}", cuda) { ErrorName = cuda.Error },
        CLException cl => new NativeTensorException($"ilgpu: '{device}': {what} failed: {cl.Error}: {cl.Message}", cl) { ErrorName = cl.Error.ToString() },
        _ => new NativeTensorException($"ilgpu: '{device}': {what} failed: {error.GetType().Name}: {error.Message}", error) { ErrorName = error.GetType().Name },
    };
}
