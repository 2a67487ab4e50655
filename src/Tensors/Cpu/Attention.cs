using NativeTensor.Runtime;

namespace NativeTensor.Cpu;

// PLACEHOLDER (being written): the CPU attention kernels.
internal static unsafe class AttentionKernels
{
    public static void Forward(in AttentionShape shape, byte* q, byte* k, byte* v, byte* output, float* logSumExp, SimdWidth width) =>
        throw new NotImplementedException();

    public static void Backward(in AttentionShape shape, byte* outputGradient, byte* q, byte* k, byte* v, byte* output, float* logSumExp,
        float* delta, byte* dq, byte* dk, byte* dv, SimdWidth width) => throw new NotImplementedException();
}
