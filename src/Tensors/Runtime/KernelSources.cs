using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace NativeTensor.Runtime;

/// <summary>
/// The device kernel sources embedded from <c>kernels/</c>. A source's <c>#include "dialect.h"</c> is replaced by
/// the header's text, so OpenCL (which has no include path for in-memory programs) and NVRTC build the same text.
/// </summary>
internal static class KernelSources
{
    private const string Include = "#include \"dialect.h\"";
    private static readonly ConcurrentDictionary<string, string> Cache = new();

    /// <summary>The self-contained source of <paramref name="file"/> (e.g. <c>windows.cl</c> or <c>cuda/windows.cu</c>).</summary>
    public static string Get(string file) => Cache.GetOrAdd(file, static name =>
    {
        string text = Read(name);
        return text.Contains(Include, StringComparison.Ordinal) ? text.Replace(Include, Read("dialect.h"), StringComparison.Ordinal) : text;
    });

    /// <summary>A short stable hash of a source and its build options, the key of every kernel cache.</summary>
    public static string Hash(string source, string options) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(options + "\n" + source)), 0, 8);

    private static string Read(string name)
    {
        using Stream? stream = typeof(KernelSources).Assembly.GetManifestResourceStream("kernels/" + name)
            ?? throw new NativeTensorException($"kernel source 'kernels/{name}' is not embedded in {typeof(KernelSources).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
