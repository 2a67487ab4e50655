using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// The words of <c>kernels/dialect.h</c> in ILGPU C#, so each kernel reads as its OpenCL C twin does: thread indices
/// (<c>LID</c>, <c>GROUP</c>, <c>GID</c>, the grid-stride step), bit casts and the binary32 arithmetic words.
/// </summary>
/// <remarks>
/// C# float arithmetic is already what dialect.h's words ask for: every <c>*</c>, <c>+</c>, <c>/</c> rounds once to
/// nearest even and is never contracted into a fused multiply-add (ECMA-335 III.1.1.1 allows extra precision, which
/// RyuJIT's SSE code never uses), and subnormals are kept. The words are still named, so a kernel states which rounding
/// it relies on, and a backend whose code generator needs a rounding pinned (PTX <c>.rn</c>) has one place to look.
/// </remarks>
internal static class Dialect
{
    /// <summary><c>GID(0)</c>: the thread's index in the whole 1-D grid, in 64 bits.</summary>
    public static long GlobalIndex => (long)Grid.IdxX * Group.DimX + Group.IdxX;

    /// <summary><c>LSIZE(0) * NGROUPS(0)</c>: the step of a grid-stride loop, in 64 bits.</summary>
    public static long GridStride => (long)Group.DimX * Grid.DimX;

    /// <summary><c>AS_FLOAT</c>: 32 bits read as a binary32, unchanged (NaN payloads included).</summary>
    public static float AsFloat(uint bits) => Interop.IntAsFloat(bits);

    /// <summary><c>AS_UINT</c>: a binary32's 32 bits, unchanged.</summary>
    public static uint AsUInt(float value) => Interop.FloatAsInt(value);

    /// <summary><c>CLZ32</c>: leading zero bits of a 32-bit word, 32 for 0.</summary>
    public static int Clz32(uint bits) => IntrinsicMath.BitOperations.LeadingZeroCount(bits);

    /// <summary><c>MUL_RN</c>: a * b, rounded once to nearest even, never fused.</summary>
    public static float MulRn(float a, float b) => a * b;

    /// <summary><c>ADD_RN</c>: a + b, rounded once to nearest even, never fused.</summary>
    public static float AddRn(float a, float b) => a + b;

    /// <summary><c>DIV_RN</c>: a / b, correctly rounded.</summary>
    public static float DivRn(float a, float b) => a / b;

    /// <summary><c>SQRT_RN</c>: the correctly rounded square root.</summary>
    public static float SqrtRn(float a) => MathF.Sqrt(a);

    /// <summary><c>FMA</c>: a * b + c rounded once, to nearest even (linalg.cl's dot products count one rounding per term).</summary>
    public static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
}
