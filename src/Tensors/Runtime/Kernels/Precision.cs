using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>The kernels of <c>kernels/precision.cl</c> (see its header for the bit rules, launch shape and bounds).</summary>
internal static class PrecisionKernels
{
    public const string Source = "precision.cl";

    /// <summary>The six directions among Float32, Float16 and BFloat16, in <see cref="Direction"/>'s order, as the kernels name them.</summary>
    public static readonly string[] Directions = ["f32_to_f16", "f32_to_bf16", "f16_to_f32", "bf16_to_f32", "f16_to_bf16", "bf16_to_f16"];

    private static readonly DeviceKernel[] Converts =
        [.. Directions.Select(name => new DeviceKernel(Source, name, [Buffer("src"), Buffer("dst"), Int64("count")]))];

    /// <summary>The conversion from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static DeviceKernel Convert(DType from, DType to) => Converts[Direction(from, to)];

    /// <summary>The index of a direction in <see cref="Directions"/>; both dtypes must be different floating-point ones.</summary>
    /// <exception cref="ArgumentException">The dtypes are equal or not both Float32, Float16 or BFloat16.</exception>
    public static int Direction(DType from, DType to) => (from, to) switch
    {
        (DType.Float32, DType.Float16) => 0,
        (DType.Float32, DType.BFloat16) => 1,
        (DType.Float16, DType.Float32) => 2,
        (DType.BFloat16, DType.Float32) => 3,
        (DType.Float16, DType.BFloat16) => 4,
        (DType.BFloat16, DType.Float16) => 5,
        _ => throw new ArgumentException($"no conversion kernel from {from} to {to}: both must be different floating-point dtypes", nameof(to)),
    };

    public static IEnumerable<DeviceKernel> All => Converts;
}

/// <summary>Conversions on a kernel backend: one grid-stride launch; the same dtype on both sides is a device copy.</summary>
internal abstract partial class KernelBackend
{
    public override void Convert(DeviceBuffer source, DType from, DeviceBuffer destination, DType to, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (from == to)
        {
            Copy(source, 0, destination, 0, checked(count * from.SizeOf()));
            return;
        }
        DeviceKernel kernel = PrecisionKernels.Convert(from, to);
        CheckRange(source, checked(count * from.SizeOf()), nameof(source));
        CheckRange(destination, checked(count * to.SizeOf()), nameof(destination));
        // The kernel reads and writes through restrict pointers, and a narrowing in place would overwrite elements
        // other threads have yet to read.
        if (ReferenceEquals(source, destination))
            throw new ArgumentException("destination is source itself: convert into another buffer", nameof(destination));
        if (count == 0) return;
        Launch(kernel, LaunchShapes.GridStride(Prepare(kernel), count), source, destination, count);
    }
}
