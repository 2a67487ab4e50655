using ILGPU;
using ILGPU.Runtime.Cuda;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// The words of <c>kernels/dialect.h</c> in ILGPU C#, so each kernel reads as its OpenCL C twin does: thread indices
/// (<c>GID</c>, the grid-stride step), bit casts and the binary32 arithmetic words.
/// </summary>
/// <remarks>
/// Why the arithmetic words are more than <c>*</c> and <c>+</c>: ILGPU 1.5.3 writes a float multiply as PTX
/// <c>mul.f32</c> and an add as <c>add.f32</c>, which PTX lets ptxas contract into an FMA (only <c>.rn</c> forbids it),
/// so AdamW's <c>b1 * m + c1 * g</c> could round once where CUDA C's <c>__fmul_rn</c>/<c>__fadd_rn</c> round twice. On
/// CUDA these words are therefore inline PTX with <c>.rn</c>; <see cref="CudaAsm.IsSupported"/> is a constant there, and
/// ptxas drops the untaken plain branch that ILGPU still emits.
/// On ILGPU's CPU accelerator the kernels run as .NET code, whose float operations round once each and are never
/// contracted (RyuJIT), subnormals kept. ILGPU's OpenCL backend writes one operation per C statement, and OpenCL C
/// contracts only within an expression, so plain operators keep their roundings there too. Division and square root
/// are already <c>div.rn.f32</c> and <c>sqrt.rn.f32</c> on CUDA; none of the words flush subnormals unless the context
/// is built with a fast <c>MathMode</c>, which the kernels' bit-exactness rules out.
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
    public static float MulRn(float a, float b)
    {
        if (!CudaAsm.IsSupported) return a * b;
        CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float product, a, b);
        return product;
    }

    /// <summary><c>ADD_RN</c>: a + b, rounded once to nearest even, never fused.</summary>
    public static float AddRn(float a, float b)
    {
        if (!CudaAsm.IsSupported) return a + b;
        CudaAsm.Emit("add.rn.f32 %0, %1, %2;", out float sum, a, b);
        return sum;
    }

    /// <summary><c>DIV_RN</c>: a / b, correctly rounded (<c>div.rn.f32</c> on CUDA).</summary>
    public static float DivRn(float a, float b) => a / b;

    /// <summary><c>SQRT_RN</c>: the correctly rounded square root (<c>sqrt.rn.f32</c> on CUDA).</summary>
    public static float SqrtRn(float a) => MathF.Sqrt(a);

    /// <summary>
    /// <c>FMA</c>: a * b + c rounded once, to nearest even (linalg.cl's dot products count one rounding per term):
    /// <c>fma.rn.f32</c> on CUDA, <see cref="SoftFma"/> elsewhere. ILGPU 1.5.3 has no FMA intrinsic, and it writes
    /// <see cref="MathF.FusedMultiplyAdd"/> into PTX and OpenCL C as a call of an undefined function; since it also keeps
    /// the untaken branch of an accelerator test in the code it emits (the test becomes a constant compare that only
    /// ptxas folds), that call may not appear in any branch, so the CPU accelerator takes the software path too.
    /// </summary>
    public static float Fma(float a, float b, float c)
    {
        if (!CudaAsm.IsSupported) return SoftFma(a, b, c);
        CudaAsm.Emit("fma.rn.f32 %0, %1, %2, %3;", out float result, a, b, c);
        return result;
    }

    /// <summary>
    /// fma(a, b, c) for binary32 from binary64 operations, correctly rounded: a * b is exact in binary64 (48 significant
    /// bits, exponents within [-298, 256]); the sum p + c is rounded to binary64 <i>by round-to-odd</i>, its error from
    /// TwoSum deciding the sticky last bit, so the final rounding to binary32 (53 >= 24 + 2 bits) is the one correct
    /// rounding of the exact a * b + c (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved
    /// algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008). Signs of zero follow from binary64's own
    /// rules, which are binary32's. Needs a device with binary64 arithmetic that keeps its subnormals.
    /// </summary>
    public static float SoftFma(float a, float b, float c)
    {
        double p = (double)a * b;
        double s = p + c;
        double z = s - p;
        double error = (p - (s - z)) + (c - z);
        ulong bits = Interop.FloatAsInt(s);
        // Inexact with an even last bit: step one ulp towards the exact sum, which lies strictly between s and that neighbour.
        if (error != 0.0 && (bits & 1ul) == 0ul && !double.IsInfinity(s))
            bits = (error > 0.0) == (s > 0.0) ? bits + 1ul : bits - 1ul;
        return (float)Interop.IntAsFloat(bits);
    }
}
