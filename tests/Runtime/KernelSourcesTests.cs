using System.Text.RegularExpressions;
using NativeTensor.Runtime;

namespace NativeTensor.Tests.Runtime;

/// <summary>The include expansion every device backend builds from: each header pasted once, no include left for a compiler without a file system.</summary>
public sealed class KernelSourcesTests
{
    [Theory]
    [InlineData("windows.cl")]
    [InlineData("precision.cl")]
    [InlineData("linalg.cl")]
    [InlineData("moments.cl")]
    [InlineData("attention.cl")]
    public void Every_header_is_pasted_once_and_no_include_line_is_left(string file)
    {
        string source = KernelSources.Get(file);
        Assert.DoesNotMatch(new Regex(@"^[ \t]*#[ \t]*include", RegexOptions.Multiline), source);
        // Each of these includes dialect.h and convert.h, and convert.h includes dialect.h again.
        Assert.Single(Regex.Matches(source, @"#define NATIVETENSOR_DIALECT_H\b"));
        Assert.Single(Regex.Matches(source, @"#define NATIVETENSOR_CONVERT_H\b"));
        Assert.Contains("INLINE ushort nt_f32_to_f16(uint bits)", source);
        Assert.Same(source, KernelSources.Get(file));
    }
}
