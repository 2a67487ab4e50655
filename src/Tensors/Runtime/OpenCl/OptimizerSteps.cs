namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The launches of <c>kernels/optimizer_steps.cl</c> (see its header for the math, launch shape and bounds): one
/// grid-stride kernel per step, sized as a conversion is; and of <c>find_non_finite_*</c> in <c>kernels/unscale.cl</c>,
/// which share the unscale kernels' flag: reset once, one launch per tensor, read back once.
/// </summary>
/// <remarks>
/// The steps divide and take square roots, which OpenCL 1.2 lets a device do to within 2.5 and 3 ulp unless the
/// program is built with <c>-cl-fp32-correctly-rounded-divide-sqrt</c>; that option is passed wherever the device
/// allows it (<see cref="RoundsDivideAndSqrtCorrectly"/>), so a conforming device computes the CPU's and CUDA's bits.
/// </remarks>
internal sealed unsafe partial class OpenClBackend
{
    /// <summary>The kernel of each step, indexed as <see cref="Backend.StepKernel"/> orders its names; filled on first use.</summary>
    private readonly OpenClKernel?[] _steps = new OpenClKernel?[18];

    /// <summary>find_non_finite_* by <see cref="FloatIndex"/>; filled on first use.</summary>
    private readonly OpenClKernel?[] _nonFinite = new OpenClKernel?[3];

    /// <inheritdoc/>
    public override bool FindNonFinite(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> tensors)
    {
        foreach ((DeviceBuffer buffer, DType dtype, long count) in tensors)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count);
            CheckRange(buffer, 0, count * dtype.SizeOf(), nameof(tensors));
            _ = NonFiniteKernel(dtype);
        }
        uint found = 0;
        lock (_nonFiniteGate)
        {
            // Every kernel the list needs is created before the flag is touched: a build failure then queues nothing.
            foreach ((_, DType dtype, long count) in tensors)
                if (count > 0) _nonFinite[FloatIndex(dtype)] ??= UnscaleProgram().Kernel(NonFiniteKernel(dtype));
            MemHandle flag = Scratch(ref _nonFiniteFlag, sizeof(uint));
            using var lease = new Lease(flag);
            // Blocking write and read, as in UnscaleAndCheck: the host value lives on this stack frame.
            Check(OpenClNative.clEnqueueWriteBuffer(Queue, lease.Pointer, OpenClNative.True, 0, sizeof(uint), &found, 0, null, null),
                "clEnqueueWriteBuffer(non-finite flag)");
            foreach ((DeviceBuffer buffer, DType dtype, long count) in tensors)
            {
                if (count == 0) continue;
                OpenClKernel kernel = _nonFinite[FloatIndex(dtype)]!;
                (long local, long groups) = ConvertShape(kernel, count);
                kernel.Launch(Queue, (groups, 1), local, buffer, count, flag);
            }
            Check(OpenClNative.clEnqueueReadBuffer(Queue, lease.Pointer, OpenClNative.True, 0, sizeof(uint), &found, 0, null, null),
                "clEnqueueReadBuffer(non-finite flag)");
        }
        return found != 0;
    }

    /// <inheritdoc/>
    public override void AdamWStep(in StepBuffers buffers, in AdamWConstants constants)
    {
        RequireSubnormals(nameof(AdamWStep));
        DeviceBuffer second = buffers.SecondState
            ?? throw new ArgumentException("AdamW needs a second-moment buffer (SecondState is null)", nameof(buffers));
        CheckStep(adamW: true, buffers, second);
        long count = buffers.Count;
        if (count == 0) return;
        OpenClKernel kernel = StepKernelFor(adamW: true, buffers);
        (long local, long groups) = ConvertShape(kernel, count);
        kernel.Launch(Queue, (groups, 1), local,
            buffers.Parameters, buffers.Gradient, buffers.FirstState, second, buffers.Working ?? buffers.Parameters, count,
            Bits(constants.InverseScale), Bits(constants.Beta1), Bits(constants.OneMinusBeta1), Bits(constants.Beta2),
            Bits(constants.OneMinusBeta2), Bits(constants.Decay), Bits(constants.StepSize), Bits(constants.InverseSqrtCorrection2),
            Bits(constants.Epsilon));
    }

    /// <inheritdoc/>
    public override void SgdStep(in StepBuffers buffers, in SgdConstants constants)
    {
        RequireSubnormals(nameof(SgdStep));
        CheckStep(adamW: false, buffers, second: null);
        long count = buffers.Count;
        if (count == 0) return;
        OpenClKernel kernel = StepKernelFor(adamW: false, buffers);
        uint flags = (constants.Nesterov ? 1u : 0u) | (constants.First ? 2u : 0u);
        (long local, long groups) = ConvertShape(kernel, count);
        kernel.Launch(Queue, (groups, 1), local,
            buffers.Parameters, buffers.Gradient, buffers.FirstState, buffers.Working ?? buffers.Parameters, count,
            Bits(constants.InverseScale), Bits(constants.Momentum), Bits(constants.OneMinusDampening), Bits(constants.WeightDecay),
            Bits(constants.LearningRate), flags);
    }

    /// <summary>
    /// Subnormal gradients and moments are ordinary in training (a small gradient times a small loss-scale inverse), so a
    /// device that flushes them would take a different step than the CPU and CUDA: refused, as UnscaleAndCheck refuses.
    /// </summary>
    private void RequireSubnormals(string operation)
    {
        if (!KeepsSubnormals)
            throw new NativeTensorException(
                $"opencl: '{Name}' flushes binary32 subnormals (no CL_FP_DENORM), so {operation} could not match the cpu bit for bit; step on the cpu instead")
            { ErrorName = "CL_FP_DENORM missing" };
    }

    /// <summary>
    /// Every buffer is this backend's and holds <see cref="StepBuffers.Count"/> elements of its dtype, and a kernel
    /// exists for the dtypes (<see cref="Backend.StepKernel"/> throws otherwise), even when there is nothing to launch.
    /// </summary>
    private void CheckStep(bool adamW, in StepBuffers buffers, DeviceBuffer? second)
    {
        long count = buffers.Count;
        ArgumentOutOfRangeException.ThrowIfNegative(count, nameof(buffers));
        _ = StepKernel(adamW, buffers.GradientType, buffers.Working is null ? null : buffers.WorkingType);
        CheckRange(buffers.Parameters, 0, checked(count * sizeof(float)), "buffers.Parameters");
        CheckRange(buffers.Gradient, 0, checked(count * buffers.GradientType.SizeOf()), "buffers.Gradient");
        CheckRange(buffers.FirstState, 0, checked(count * sizeof(float)), "buffers.FirstState");
        if (second is not null) CheckRange(second, 0, checked(count * sizeof(float)), "buffers.SecondState");
        if (buffers.Working is not null) CheckRange(buffers.Working, 0, checked(count * sizeof(ushort)), "buffers.Working");
    }

    /// <summary>The step's kernel, built with correctly rounded divide and sqrt where the device offers them.</summary>
    private OpenClKernel StepKernelFor(bool adamW, in StepBuffers buffers)
    {
        DType? working = buffers.Working is null ? null : buffers.WorkingType;
        string name = StepKernel(adamW, buffers.GradientType, working);
        int slot = (adamW ? 0 : 9) + 3 * FloatIndex(buffers.GradientType) + (working is { } w ? FloatIndex(w) : 0);
        string options = RoundsDivideAndSqrtCorrectly ? BuildOptions + " -cl-fp32-correctly-rounded-divide-sqrt" : BuildOptions;
        return _steps[slot] ??= Program(KernelSources.Get("optimizer_steps.cl"), options).Kernel(name);
    }

    private static uint Bits(float value) => BitConverter.SingleToUInt32Bits(value);
}
