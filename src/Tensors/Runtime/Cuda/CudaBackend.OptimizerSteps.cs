namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The fused optimizer steps on CUDA: one grid-stride launch of <c>kernels/optimizer_steps.cl</c> per step (see its
/// header for the math, launch shape and bounds), sized as a conversion is, every buffer leased while it is queued;
/// and <c>find_non_finite_*</c> of <c>kernels/unscale.cl</c>, which share the unscale kernels' flag: reset once, one
/// launch per tensor, read back once. The kernels round every operation with the _rn intrinsics and NVRTC keeps
/// subnormals (see unscale.cl), so the steps give the CPU's bits.
/// </summary>
internal sealed unsafe partial class CudaBackend
{
    private const string OptimizerStepsSource = "optimizer_steps.cl";

    public override bool FindNonFinite(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> tensors)
    {
        foreach ((DeviceBuffer buffer, DType dtype, long count) in tensors)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count);
            using Lease checkedOnly = Hold(buffer, 0, checked(count * dtype.SizeOf()), nameof(tensors));
            _ = NonFiniteKernel(dtype);
        }
        uint found = 0;
        using (Work work = Begin())
        {
            lock (_nonFiniteLock)
            {
                // Every function the list needs is loaded before the flag is touched: a compile or load failure then
                // queues nothing. Indexed Float32, Float16, BFloat16.
                IntPtr* functions = stackalloc IntPtr[3] { IntPtr.Zero, IntPtr.Zero, IntPtr.Zero };  // explicit: zeroing is not promised under SkipLocalsInit
                foreach ((_, DType dtype, long count) in tensors)
                    if (count > 0 && functions[NonFiniteSlot(dtype)] == IntPtr.Zero)
                        functions[NonFiniteSlot(dtype)] = _kernels.Function(UnscaleSource, NonFiniteKernel(dtype));
                IntPtr stream = work.Context.Stream;
                _driver.Check(_driver.cuMemsetD32Async(_nonFiniteFlag, 0, 1, stream), "cuMemsetD32Async");
                ulong flag = _nonFiniteFlag;
                ulong data = 0;
                long elements = 0;
                // find_non_finite_*(data, count, found): a pointer to each argument's value, in order; cuLaunchKernel
                // copies the values before returning, so one array serves every tensor.
                void** arguments = stackalloc void*[3];
                arguments[0] = &data;
                arguments[1] = &elements;
                arguments[2] = &flag;
                foreach ((DeviceBuffer buffer, DType dtype, long count) in tensors)
                {
                    if (count == 0) continue;
                    using Lease target = Hold(buffer, 0, checked(count * dtype.SizeOf()), nameof(tensors));
                    data = At(target, 0);
                    elements = count;
                    Launch(work, functions[NonFiniteSlot(dtype)], NonFiniteKernel(dtype), ConvertBlocks(count, ResidentThreads), 1,
                        ConvertBlockThreads, arguments);
                }
                _driver.Check(_driver.cuMemcpyDtoHAsync(&found, _nonFiniteFlag, sizeof(uint), stream), "cuMemcpyDtoHAsync_v2");
                work.Context.Synchronize();
            }
        }
        return found != 0;
    }

    public override void AdamWStep(in StepBuffers buffers, in AdamWConstants constants)
    {
        long count = buffers.Count;
        ArgumentOutOfRangeException.ThrowIfNegative(count, nameof(buffers));
        DeviceBuffer secondState = buffers.SecondState
            ?? throw new ArgumentException("AdamW needs a second-moment buffer (SecondState is null)", nameof(buffers));
        string name = StepKernel(true, buffers.GradientType, buffers.Working is null ? null : buffers.WorkingType);
        using Lease parameters = Hold(buffers.Parameters, 0, checked(count * sizeof(float)), "buffers.Parameters");
        using Lease gradient = Hold(buffers.Gradient, 0, checked(count * buffers.GradientType.SizeOf()), "buffers.Gradient");
        using Lease first = Hold(buffers.FirstState, 0, checked(count * sizeof(float)), "buffers.FirstState");
        using Lease second = Hold(secondState, 0, checked(count * sizeof(float)), "buffers.SecondState");
        using Lease working = buffers.Working is null ? default : Hold(buffers.Working, 0, checked(count * sizeof(ushort)), "buffers.Working");
        if (count == 0) return;
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(OptimizerStepsSource, name);
        ulong p = At(parameters, 0), g = At(gradient, 0), m = At(first, 0), v = At(second, 0);
        // Without a working copy the kernel never touches its pointer; the parameters stand in for it.
        ulong w = buffers.Working is null ? p : At(working, 0);
        uint s = Bits(constants.InverseScale), b1 = Bits(constants.Beta1), c1 = Bits(constants.OneMinusBeta1);
        uint b2 = Bits(constants.Beta2), c2 = Bits(constants.OneMinusBeta2), decay = Bits(constants.Decay);
        uint stepSize = Bits(constants.StepSize), inverseSqrt = Bits(constants.InverseSqrtCorrection2), epsilon = Bits(constants.Epsilon);
        // adamw_*(p, grad, m, v, working, count, s, b1, c1, b2, c2, decay, step_size, inv_sqrt_c2, eps), in order.
        void** arguments = stackalloc void*[15];
        arguments[0] = &p;
        arguments[1] = &g;
        arguments[2] = &m;
        arguments[3] = &v;
        arguments[4] = &w;
        arguments[5] = &count;
        arguments[6] = &s;
        arguments[7] = &b1;
        arguments[8] = &c1;
        arguments[9] = &b2;
        arguments[10] = &c2;
        arguments[11] = &decay;
        arguments[12] = &stepSize;
        arguments[13] = &inverseSqrt;
        arguments[14] = &epsilon;
        Launch(work, kernel, name, ConvertBlocks(count, ResidentThreads), 1, ConvertBlockThreads, arguments);
    }

    public override void SgdStep(in StepBuffers buffers, in SgdConstants constants)
    {
        long count = buffers.Count;
        ArgumentOutOfRangeException.ThrowIfNegative(count, nameof(buffers));
        string name = StepKernel(false, buffers.GradientType, buffers.Working is null ? null : buffers.WorkingType);
        using Lease parameters = Hold(buffers.Parameters, 0, checked(count * sizeof(float)), "buffers.Parameters");
        using Lease gradient = Hold(buffers.Gradient, 0, checked(count * buffers.GradientType.SizeOf()), "buffers.Gradient");
        using Lease momentum = Hold(buffers.FirstState, 0, checked(count * sizeof(float)), "buffers.FirstState");
        using Lease working = buffers.Working is null ? default : Hold(buffers.Working, 0, checked(count * sizeof(ushort)), "buffers.Working");
        if (count == 0) return;
        using Work work = Begin();
        IntPtr kernel = _kernels.Function(OptimizerStepsSource, name);
        ulong p = At(parameters, 0), g = At(gradient, 0), b = At(momentum, 0);
        ulong w = buffers.Working is null ? p : At(working, 0);
        uint s = Bits(constants.InverseScale), mu = Bits(constants.Momentum), keep = Bits(constants.OneMinusDampening);
        uint weightDecay = Bits(constants.WeightDecay), rate = Bits(constants.LearningRate);
        uint flags = (constants.Nesterov ? 1u : 0u) | (constants.First ? 2u : 0u);
        // sgd_*(p, grad, b, working, count, s, mu, one_minus_dampening, wd, lr, flags), in order.
        void** arguments = stackalloc void*[11];
        arguments[0] = &p;
        arguments[1] = &g;
        arguments[2] = &b;
        arguments[3] = &w;
        arguments[4] = &count;
        arguments[5] = &s;
        arguments[6] = &mu;
        arguments[7] = &keep;
        arguments[8] = &weightDecay;
        arguments[9] = &rate;
        arguments[10] = &flags;
        Launch(work, kernel, name, ConvertBlocks(count, ResidentThreads), 1, ConvertBlockThreads, arguments);
    }

    private static int NonFiniteSlot(DType dtype) => dtype switch
    {
        DType.Float32 => 0,
        DType.Float16 => 1,
        _ => 2,  // BFloat16: NonFiniteKernel refused every other dtype before this is asked
    };

    private static uint Bits(float value) => BitConverter.SingleToUInt32Bits(value);
}
