using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>The widest vector a CPU kernel may use, in bytes. Tests pin it lower to run every path on one machine.</summary>
internal enum SimdWidth
{
    /// <summary>No vectors: the plain scalar fallback.</summary>
    Scalar = 0,
    /// <summary><see cref="Vector128"/> (SSE / NEON).</summary>
    V128 = 16,
    /// <summary><see cref="Vector256"/> (AVX2).</summary>
    V256 = 32,
    /// <summary><see cref="Vector512"/> (AVX-512).</summary>
    V512 = 64,
}

internal static class SimdWidths
{
    /// <summary>The widest width this process runs in hardware (honours <c>DOTNET_EnableAVX512=0</c> and kin).</summary>
    public static SimdWidth Best { get; } =
        Vector512.IsHardwareAccelerated ? SimdWidth.V512 :
        Vector256.IsHardwareAccelerated ? SimdWidth.V256 :
        Vector128.IsHardwareAccelerated ? SimdWidth.V128 : SimdWidth.Scalar;

    public static string Describe(this SimdWidth width) => width switch
    {
        SimdWidth.V512 => "Vector512",
        SimdWidth.V256 => "Vector256",
        SimdWidth.V128 => "Vector128",
        _ => "scalar",
    };
}
