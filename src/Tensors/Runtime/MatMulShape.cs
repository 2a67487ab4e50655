namespace NativeTensor.Runtime;

/// <summary>
/// The operands of one <c>C = alpha * op(A) * op(B) + beta * C</c>, all row-major and contiguous: op(A) is [M, K] (A is
/// stored [K, M] when <see cref="TransposeA"/>), op(B) is [K, N] (B is stored [N, K] when <see cref="TransposeB"/>), and
/// C is Float32 [M, N]. A and B are Float32, Float16 or BFloat16 (each its own); products accumulate in Float32.
/// Arguments arrive validated: sizes fit the buffers, C is distinct from A and B, M, N, K &gt;= 1.
/// </summary>
internal readonly record struct MatMulShape(
    DeviceBuffer A, DType AType, bool TransposeA, DeviceBuffer B, DType BType, bool TransposeB, DeviceBuffer C, int M, int N, int K);
