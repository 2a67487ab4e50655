namespace NativeTensor.Runtime.Cuda;

internal sealed class CudaBackend
{
    public static (IReadOnlyList<Backend> Found, string? Reason) Discover() => ([], "backend under construction");
}
