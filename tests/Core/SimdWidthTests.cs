using NativeTensor.Cpu;

namespace NativeTensor.Tests.Core;

/// <summary>
/// CI runs the CPU suites a second and a third time with AVX-512, then every hardware intrinsic, turned off by the
/// runtime's knobs. Their names change between .NET versions (under .NET 10, <c>DOTNET_EnableAVX512F=0</c> does nothing
/// and <c>DOTNET_EnableAVX512=0</c> is the switch), and a knob that does not take effect would rerun the AVX-512 paths
/// under a green AVX2 label. So each such pass names the width it expects, and this test holds the process to it.
/// </summary>
public sealed class SimdWidthTests
{
    /// <summary>The environment variable a test pass sets to the <see cref="SimdWidth"/> it means to run (V512, V256, V128, Scalar).</summary>
    private const string Expected = "NATIVETENSOR_EXPECT_SIMD";

    [Fact]
    public void The_widest_vector_is_the_one_the_run_asked_for()
    {
        string? expected = Environment.GetEnvironmentVariable(Expected);
        Assert.SkipWhen(expected is null, $"{Expected} is not set: this run asks for no particular vector width");
        Assert.True(Enum.TryParse(expected, out SimdWidth width) && Enum.IsDefined(width), $"{Expected}={expected} names no SimdWidth");
        Assert.Equal(width, SimdWidths.Best);
    }
}
