using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace NativeTensor.Runtime;

/// <summary>
/// The device kernel sources embedded from <c>kernels/</c>. Every <c>#include "name.h"</c> line of a source is
/// replaced by that embedded header's text, recursively, each header pasted once (a later include of the same header
/// becomes a comment), so OpenCL (which has no include path for in-memory programs) and NVRTC build the same
/// self-contained text. Headers keep their own include guards, so a second copy would be harmless anyway.
/// </summary>
internal static partial class KernelSources
{
    private static readonly ConcurrentDictionary<string, string> Cache = new();

    /// <summary>The self-contained source of <paramref name="file"/> (e.g. <c>windows.cl</c> or <c>cuda/windows.cu</c>).</summary>
    public static string Get(string file) => Cache.GetOrAdd(file, static name => Expand(Read(name), new HashSet<string>(StringComparer.Ordinal)));

    /// <summary>A short stable hash of a source and its build options, the key of every kernel cache.</summary>
    public static string Hash(string source, string options) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(options + "\n" + source)), 0, 8);

    /// <summary><paramref name="text"/> with each include line replaced by its header, expanded in turn; <paramref name="pasted"/> holds the headers already in.</summary>
    private static string Expand(string text, HashSet<string> pasted) => IncludeLine().Replace(text, match =>
    {
        string header = match.Groups["name"].Value;
        if (!pasted.Add(header)) return $"/* {header}: already included above */";
        return Expand(Read(header), pasted);
    });

    /// <summary>A whole line <c>#include "name.h"</c> (only at the start of a line, so a mention inside a comment stays).</summary>
    [GeneratedRegex(@"^[ \t]*#[ \t]*include[ \t]+""(?<name>[A-Za-z0-9_./-]+\.h)""[ \t]*\r?$", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex IncludeLine();

    private static string Read(string name)
    {
        using Stream? stream = typeof(KernelSources).Assembly.GetManifestResourceStream("kernels/" + name)
            ?? throw new NativeTensorException($"kernel source 'kernels/{name}' is not embedded in {typeof(KernelSources).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
