namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// The one table of allowed differences from the reference, by op, dtype and backend. Test bodies never hold a
/// tolerance literal; they ask here, and each entry says where its number comes from.
/// </summary>
public static class Tolerances
{
    /// <summary>Largest allowed |actual - expected| in units in the last place, or 0 for bit-exact.</summary>
    public static int Ulps(string op, DType dtype, DeviceKind backend) => (op, dtype, backend) switch
    {
        // Windows move bytes and never round, so every dtype on every backend must be bit-exact.
        ("windows", _, _) => 0,
        // Conversions are specified to the bit (round to nearest even, NaN rules), so every backend must match exactly.
        ("convert", _, _) => 0,
        _ => throw new ArgumentException($"no tolerance entry for ({op}, {dtype}, {backend}): add one with its source"),
    };

    /// <summary>
    /// The error of one binary32 operation, in ulps, that a backend's kernel for <paramref name="op"/> may make: the
    /// input of <see cref="StepErrorBound"/>, which derives each element's tolerance from it.
    /// </summary>
    public static (double Basic, double Sqrt, double Divide) OperationUlps(string op, DeviceKind backend) => (op, backend) switch
    {
        // IEEE 754 add, multiply, divide and sqrt are correctly rounded (half an ulp): .NET's scalar and vector float
        // operations, and CUDA's __fadd_rn/__fmul_rn/__fdiv_rn/__fsqrt_rn (the dialect's words, no --use_fast_math).
        ("adamw" or "sgd", DeviceKind.Cpu or DeviceKind.Cuda) => (0.5, 0.5, 0.5),
        // OpenCL 1.2 §7.4: add and multiply correctly rounded; x / y within 2.5 ulp and sqrt within 3 ulp unless the
        // program is built with -cl-fp32-correctly-rounded-divide-sqrt, which only some devices support.
        ("adamw" or "sgd", DeviceKind.OpenCl) => (0.5, 3, 2.5),
        _ => throw new ArgumentException($"no per-operation accuracy for ({op}, {backend}): add one with its source"),
    };
}
