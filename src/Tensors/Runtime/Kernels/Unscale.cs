using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// The kernels of <c>kernels/unscale.cl</c> (see its header for the math, the flag protocol and the floating-point
/// mode): the loss-scaling step and the non-finite check, which share one flag.
/// </summary>
internal static class UnscaleKernels
{
    public const string Source = "unscale.cl";

    public static readonly DeviceKernel Single = Unscale("f32");
    public static readonly DeviceKernel BFloat16 = Unscale("bf16");

    private static readonly DeviceKernel[] NonFiniteChecks =
        [.. new[] { "f32", "f16", "bf16" }.Select(t => new DeviceKernel(Source, $"find_non_finite_{t}", [Buffer("data"), Int64("count"), Buffer("found")]))];

    /// <summary>Multiplies in floating point, so it needs subnormals kept to match the reference bit for bit.</summary>
    private static DeviceKernel Unscale(string type) =>
        new(Source, $"unscale_{type}", [Buffer("data"), Int64("count"), UInt32("scale_bits"), Buffer("found")], KernelNeeds.Subnormals);

    /// <summary>The unscale kernel for gradients of <paramref name="dtype"/>.</summary>
    public static DeviceKernel For(DType dtype) => dtype switch
    {
        DType.Float32 => Single,
        DType.BFloat16 => BFloat16,
        _ => throw new ArgumentException($"no unscale kernel for {dtype}: gradients are Float32 or BFloat16", nameof(dtype)),
    };

    /// <summary>The kernel that looks for NaN and ±Inf in <paramref name="dtype"/>.</summary>
    public static DeviceKernel NonFinite(DType dtype) => dtype switch
    {
        DType.Float32 => NonFiniteChecks[0],
        DType.Float16 => NonFiniteChecks[1],
        DType.BFloat16 => NonFiniteChecks[2],
        _ => throw new ArgumentException($"no non-finite check for {dtype}: Float32, Float16 or BFloat16", nameof(dtype)),
    };

    public static IEnumerable<DeviceKernel> All => [Single, BFloat16, .. NonFiniteChecks];
}

/// <summary>
/// Unscale-and-check and find-non-finite on a kernel backend: one grid-stride launch per tensor, all sharing one 4-byte
/// flag that is reset once before the list and read back once after it.
/// </summary>
internal abstract partial class KernelBackend
{
    /// <summary>Serialises the reset, launches and read-back of <see cref="_nonFiniteFlag"/>.</summary>
    private readonly object _nonFiniteGate = new();

    private DeviceBuffer? _nonFiniteFlag;

    public override bool UnscaleAndCheck(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> gradients, float inverseScale)
    {
        CheckList(gradients, UnscaleKernels.For, nameof(gradients));
        // Both kernels are built before the first launch: a build failure, or a device that flushes subnormals, then
        // leaves every gradient untouched, never a list half scaled that a retry would scale twice.
        KernelLimits single = Prepare(UnscaleKernels.Single);
        KernelLimits bfloat16 = Prepare(UnscaleKernels.BFloat16);
        uint scaleBits = Bits(inverseScale);
        return WithNonFiniteFlag(flag =>
        {
            foreach ((DeviceBuffer buffer, DType dtype, long count) in gradients)
            {
                if (count == 0) continue;
                DeviceKernel kernel = UnscaleKernels.For(dtype);
                Launch(kernel, LaunchShapes.GridStride(dtype == DType.Float32 ? single : bfloat16, count), buffer, count, scaleBits, flag);
            }
        });
    }

    public override bool FindNonFinite(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> tensors)
    {
        CheckList(tensors, UnscaleKernels.NonFinite, nameof(tensors));
        // Every kernel the list needs is built before the flag is touched: a build failure then queues nothing.
        foreach ((_, DType dtype, long count) in tensors)
            if (count > 0) Prepare(UnscaleKernels.NonFinite(dtype));
        return WithNonFiniteFlag(flag =>
        {
            foreach ((DeviceBuffer buffer, DType dtype, long count) in tensors)
            {
                if (count == 0) continue;
                DeviceKernel kernel = UnscaleKernels.NonFinite(dtype);
                Launch(kernel, LaunchShapes.GridStride(Prepare(kernel), count), buffer, count, flag);
            }
        });
    }

    /// <summary>Each tensor is this backend's, holds its count of elements, and has a kernel for its dtype.</summary>
    private void CheckList(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> tensors, Func<DType, DeviceKernel> kernel, string name)
    {
        foreach ((DeviceBuffer buffer, DType dtype, long count) in tensors)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count, name);
            _ = kernel(dtype);
            CheckRange(buffer, checked(count * dtype.SizeOf()), name);
        }
    }

    /// <summary>Resets the shared flag, queues <paramref name="launches"/> (which set it), reads it back once.</summary>
    private unsafe bool WithNonFiniteFlag(Action<DeviceBuffer> launches)
    {
        uint found = 0;
        lock (_nonFiniteGate)
        {
            DeviceBuffer flag = Scratch(ref _nonFiniteFlag, sizeof(uint));
            Fill(flag, 0, 1);
            launches(flag);
            Read(flag, 0, new Span<byte>(&found, sizeof(uint)));
        }
        return found != 0;
    }
}
