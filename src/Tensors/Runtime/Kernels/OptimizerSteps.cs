using System.Collections.Immutable;
using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// The kernels of <c>kernels/optimizer_steps.cl</c> (see its header for the math, launch shape and bounds): a fused AdamW
/// and a fused SGD step for every gradient dtype, each with or without a Float16 or BFloat16 working copy.
/// </summary>
internal static class OptimizerStepsKernels
{
    public const string Source = "optimizer_steps.cl";

    /// <summary>The steps divide, take square roots and multiply: the reference's bits need all three correctly rounded and subnormals kept.</summary>
    private const KernelNeeds Needs = KernelNeeds.Subnormals | KernelNeeds.CorrectlyRoundedDivideSqrt;

    private static readonly ImmutableArray<KernelParameter> AdamWParameters =
        [Buffer("p"), Buffer("grad"), Buffer("m"), Buffer("v"), Buffer("working"), Int64("count"), UInt32("s_bits"), UInt32("b1_bits"),
         UInt32("c1_bits"), UInt32("b2_bits"), UInt32("c2_bits"), UInt32("decay_bits"), UInt32("step_size_bits"), UInt32("inv_sqrt_c2_bits"),
         UInt32("eps_bits")];

    private static readonly ImmutableArray<KernelParameter> SgdParameters =
        [Buffer("p"), Buffer("grad"), Buffer("b"), Buffer("working"), Int64("count"), UInt32("s_bits"), UInt32("mu_bits"),
         UInt32("one_minus_dampening_bits"), UInt32("wd_bits"), UInt32("lr_bits"), UInt32("flags")];

    private static readonly string[] Types = ["f32", "f16", "bf16"];

    /// <summary>Indexed [optimizer (AdamW, SGD)][gradient (f32, f16, bf16)][working copy (none, f16, bf16)], flattened.</summary>
    private static readonly DeviceKernel[] Steps =
        [.. from optimizer in new[] { "adamw", "sgd" }
            from gradient in Types
            from working in new[] { "none", "f16", "bf16" }
            select new DeviceKernel(Source, $"{optimizer}_{gradient}_to_{working}", optimizer == "adamw" ? AdamWParameters : SgdParameters, Needs)];

    /// <summary>The step kernel for the optimizer, the gradient's dtype and the working copy's (null without one).</summary>
    /// <exception cref="ArgumentException">No kernel reads such a gradient or writes such a working copy.</exception>
    public static DeviceKernel For(bool adamW, DType gradient, DType? working)
    {
        int g = gradient switch
        {
            DType.Float32 => 0,
            DType.Float16 => 1,
            DType.BFloat16 => 2,
            _ => throw new ArgumentException($"no optimizer step for a {gradient} gradient", nameof(gradient)),
        };
        int w = working switch
        {
            null => 0,
            DType.Float16 => 1,
            DType.BFloat16 => 2,
            _ => throw new ArgumentException($"no optimizer step writing a {working} working copy", nameof(working)),
        };
        return Steps[(adamW ? 0 : 9) + 3 * g + w];
    }

    public static IEnumerable<DeviceKernel> All => Steps;
}

/// <summary>
/// The fused optimizer steps on a kernel backend: one grid-stride launch per step, every operation in the order of
/// <see cref="AdamWConstants"/> and <see cref="SgdConstants"/>, each rounded to nearest, none fused.
/// </summary>
internal abstract partial class KernelBackend
{
    public override void AdamWStep(in StepBuffers buffers, in AdamWConstants constants)
    {
        DeviceBuffer second = buffers.SecondState
            ?? throw new ArgumentException("AdamW needs a second-moment buffer (SecondState is null)", nameof(buffers));
        DeviceKernel kernel = CheckStep(adamW: true, buffers, second);
        long count = buffers.Count;
        KernelLimits limits = Prepare(kernel);
        if (count == 0) return;
        // Without a working copy the kernel never touches its pointer; the parameters stand in for it.
        Launch(kernel, LaunchShapes.GridStride(limits, count),
            buffers.Parameters, buffers.Gradient, buffers.FirstState, second, buffers.Working ?? buffers.Parameters, count,
            Bits(constants.InverseScale), Bits(constants.Beta1), Bits(constants.OneMinusBeta1), Bits(constants.Beta2),
            Bits(constants.OneMinusBeta2), Bits(constants.Decay), Bits(constants.StepSize), Bits(constants.InverseSqrtCorrection2),
            Bits(constants.Epsilon));
    }

    public override void SgdStep(in StepBuffers buffers, in SgdConstants constants)
    {
        DeviceKernel kernel = CheckStep(adamW: false, buffers, second: null);
        long count = buffers.Count;
        KernelLimits limits = Prepare(kernel);
        if (count == 0) return;
        uint flags = (constants.Nesterov ? 1u : 0u) | (constants.First ? 2u : 0u);
        Launch(kernel, LaunchShapes.GridStride(limits, count),
            buffers.Parameters, buffers.Gradient, buffers.FirstState, buffers.Working ?? buffers.Parameters, count,
            Bits(constants.InverseScale), Bits(constants.Momentum), Bits(constants.OneMinusDampening), Bits(constants.WeightDecay),
            Bits(constants.LearningRate), flags);
    }

    /// <summary>
    /// Every buffer is this backend's and holds <see cref="StepBuffers.Count"/> elements of its dtype, and a kernel
    /// exists for the dtypes, even when there is nothing to launch; returns it.
    /// </summary>
    private DeviceKernel CheckStep(bool adamW, in StepBuffers buffers, DeviceBuffer? second)
    {
        long count = buffers.Count;
        ArgumentOutOfRangeException.ThrowIfNegative(count, nameof(buffers));
        DeviceKernel kernel = OptimizerStepsKernels.For(adamW, buffers.GradientType, buffers.Working is null ? null : buffers.WorkingType);
        CheckRange(buffers.Parameters, checked(count * sizeof(float)), "buffers.Parameters");
        CheckRange(buffers.Gradient, checked(count * buffers.GradientType.SizeOf()), "buffers.Gradient");
        CheckRange(buffers.FirstState, checked(count * sizeof(float)), "buffers.FirstState");
        if (second is not null) CheckRange(second, checked(count * sizeof(float)), "buffers.SecondState");
        if (buffers.Working is not null) CheckRange(buffers.Working, checked(count * sizeof(ushort)), "buffers.Working");
        return kernel;
    }
}
