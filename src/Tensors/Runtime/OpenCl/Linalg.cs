namespace NativeTensor.Runtime.OpenCl;

// PLACEHOLDER (being written): launches of kernels/linalg.cl.
internal sealed unsafe partial class OpenClBackend
{
    public override void MatMul(in MatMulShape shape, float alpha, float beta) => throw new NotImplementedException();
    public override void Syrk(DeviceBuffer a, DType aType, int rows, int columns, DeviceBuffer c, float alpha, float beta) => throw new NotImplementedException();
}
