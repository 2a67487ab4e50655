namespace NativeTensor.Runtime.OpenCl;

// PLACEHOLDER (being written): launches of kernels/optimizer_steps.cl and find_non_finite_* of kernels/unscale.cl.
internal sealed unsafe partial class OpenClBackend
{
    public override bool FindNonFinite(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> tensors) => throw new NotImplementedException();
    public override void AdamWStep(in StepBuffers buffers, in AdamWConstants constants) => throw new NotImplementedException();
    public override void SgdStep(in StepBuffers buffers, in SgdConstants constants) => throw new NotImplementedException();
}
