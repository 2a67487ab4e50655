namespace NativeTensor.Runtime.Kernels;

// PLACEHOLDER (being written): the CUDA tensor-core path of attention (kernels/cuda/attention.cu).
internal abstract partial class KernelBackend
{
    /// <summary>Runs the forward on the CUDA tensor-core kernels when this backend and shape take them; false otherwise.</summary>
    private bool TryTensorCoreAttentionForward(in AttentionShape shape, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        DeviceBuffer? logSumExp) => false;

    /// <summary>Runs the backward on the CUDA tensor-core kernels when this backend and shape take them; false otherwise.</summary>
    private bool TryTensorCoreAttentionBackward(in AttentionShape shape, DeviceBuffer outputGradient, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer output, DeviceBuffer logSumExp, DeviceBuffer delta, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv) => false;
}
