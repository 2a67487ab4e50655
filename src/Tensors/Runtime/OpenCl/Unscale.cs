namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The launches of <c>kernels/unscale.cl</c> (see its header for the math, the flag protocol and the floating-point
/// mode): one grid-stride kernel per gradient, all sharing one 4-byte flag that is reset once before the list and
/// read back once after it.
/// </summary>
internal sealed unsafe partial class OpenClBackend
{
    private readonly object _nonFiniteGate = new();
    private MemHandle? _nonFiniteFlag;  // the flag of unscale_*; guarded by _nonFiniteGate
    private OpenClKernel? _unscaleSingle;
    private OpenClKernel? _unscaleBFloat16;

    /// <inheritdoc/>
    public override bool UnscaleAndCheck(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> gradients, float inverseScale)
    {
        if (!KeepsSubnormals)
            throw new NativeTensorException(
                $"opencl: '{Name}' flushes binary32 subnormals (no CL_FP_DENORM), so UnscaleAndCheck could not match the reference bit for bit; unscale on the cpu instead")
            { ErrorName = "CL_FP_DENORM missing" };
        foreach ((DeviceBuffer buffer, DType dtype, long count) in gradients)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count);
            CheckRange(buffer, 0, count * dtype.SizeOf(), nameof(gradients));
            _ = UnscaleKernel(dtype);
        }
        int scaleBits = BitConverter.SingleToInt32Bits(inverseScale);
        uint found = 0;
        lock (_nonFiniteGate)
        {
            MemHandle flag = Scratch(ref _nonFiniteFlag, sizeof(uint));
            using var lease = new Lease(flag);
            // Blocking write and read: the host value lives on this stack frame. The in-order queue runs the kernels
            // between them.
            Check(OpenClNative.clEnqueueWriteBuffer(Queue, lease.Pointer, OpenClNative.True, 0, sizeof(uint), &found, 0, null, null),
                "clEnqueueWriteBuffer(non-finite flag)");
            // Both kernels are built before the first launch: a build failure then leaves every gradient untouched,
            // never a list half scaled that a retry would scale twice.
            _unscaleSingle ??= UnscaleProgram().Kernel(UnscaleKernel(DType.Float32));
            _unscaleBFloat16 ??= UnscaleProgram().Kernel(UnscaleKernel(DType.BFloat16));
            foreach ((DeviceBuffer buffer, DType dtype, long count) in gradients)
            {
                if (count == 0) continue;
                OpenClKernel kernel = dtype == DType.Float32 ? _unscaleSingle : _unscaleBFloat16;
                (long local, long groups) = ConvertShape(kernel, count);
                kernel.Launch(Queue, (groups, 1), local, buffer, count, scaleBits, flag);
            }
            Check(OpenClNative.clEnqueueReadBuffer(Queue, lease.Pointer, OpenClNative.True, 0, sizeof(uint), &found, 0, null, null),
                "clEnqueueReadBuffer(non-finite flag)");
        }
        return found != 0;
    }

    private OpenClProgram UnscaleProgram() => Program(KernelSources.Get("unscale.cl"));

    private void DisposeUnscaleScratch()
    {
        lock (_nonFiniteGate) _nonFiniteFlag?.Dispose();
    }
}
