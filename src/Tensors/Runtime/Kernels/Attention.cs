namespace NativeTensor.Runtime.Kernels;

// PLACEHOLDER (being written): the declarations of kernels/attention.cl and the host code that launches them.
internal abstract partial class KernelBackend
{
    public override void AttentionForward(in AttentionShape shape, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        DeviceBuffer? logSumExp)
    {
        if (TryTensorCoreAttentionForward(shape, q, k, v, output, logSumExp)) return;
        throw new NotSupportedException("attention is not yet on device backends");
    }

    public override void AttentionBackward(in AttentionShape shape, DeviceBuffer outputGradient, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer output, DeviceBuffer logSumExp, DeviceBuffer delta, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv)
    {
        if (TryTensorCoreAttentionBackward(shape, outputGradient, q, k, v, output, logSumExp, delta, dq, dk, dv)) return;
        throw new NotSupportedException("attention is not yet on device backends");
    }
}
