namespace NativeTensor.Runtime.OpenCl;

internal sealed class OpenClBackend
{
    public static (IReadOnlyList<Backend> Found, string? Reason) Discover() => ([], "backend under construction");
}
