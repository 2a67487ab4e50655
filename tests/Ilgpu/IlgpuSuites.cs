using NativeTensor.Runtime.Ilgpu;
using NativeTensor.Tests.Infrastructure;
using NativeTensor.Tests.Ops;
using NativeTensor.Tests.Runtime;
using NativeTensor.Tests.Training;

namespace NativeTensor.Tests.Ilgpu;

// Every parity and backend suite on ILGPU: ilgpu:cuda:0 where ILGPU sees a GPU, else its emulated ilgpu:cpu (see
// Backends.Require). The emulated CPU runs each thread of a group as an OS thread, so a launch costs milliseconds: the
// property suites run fewer random cases here, every case kept.

/// <summary>How much of each suite ILGPU runs: each case launches several kernels, and on the emulated CPU each launch costs milliseconds.</summary>
file static class IlgpuRuns
{
    public const int Property = 8;

    /// <summary>
    /// The longest tensor on the emulated CPU: its grid-stride launches have 16 threads, so past a few hundred elements
    /// every thread loops, and 4097 leaves an odd tail; a GPU keeps the suite's own length, which spans several waves.
    /// </summary>
    public static int LongestTensor(Device device, int suites) => IsEmulated(device) ? 4096 + 1 : suites;

    /// <summary>The largest matrix extent on the emulated CPU (PCA's Float32 path, linalg's cache-block cases): two 64-wide tiles and a tail.</summary>
    public static int LargestMatrix(Device device, int suites) => IsEmulated(device) ? 130 : suites;

    public static bool IsEmulated(Device device) => ((IlgpuBackend)device.Backend).AcceleratorType == ILGPU.Runtime.AcceleratorType.CPU;
}

public sealed class IlgpuWindowsTests : WindowsParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;
}

public sealed class IlgpuGatherConvertParityTests : GatherConvertParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;
}

public sealed class IlgpuPrecisionParityTests : PrecisionParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;
}

public sealed class IlgpuUnscaleParityTests : UnscaleParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;
}

public sealed class IlgpuOptimizerStepsParityTests : OptimizerStepsParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;

    protected override int LongestFindLength(DType dtype) => IlgpuRuns.LongestTensor(Device, base.LongestFindLength(dtype));
}

public sealed class IlgpuLinalgParityTests : LinalgParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;

    protected override int CacheBlockExtent(int extent) => Math.Min(extent, IlgpuRuns.LargestMatrix(Device, extent));
}

public sealed class IlgpuAttentionParityTests : AttentionParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;

    protected override int LongSequence => IlgpuRuns.LargestMatrix(Device, base.LongSequence);
}

public sealed class IlgpuMomentsTests(ITestOutputHelper output) : MomentsParityTests(output)
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;
}

public sealed class IlgpuMixedPrecisionOptimizerTests : MixedPrecisionOptimizerParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);
}

public sealed class IlgpuStreamingPcaTests : StreamingPcaDeviceTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int LargestFloat32Features => IlgpuRuns.LargestMatrix(Device, base.LargestFloat32Features);
}

public sealed class IlgpuPrecisionTests : PrecisionBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);
}

public sealed class IlgpuMomentsBackendTests : MomentsBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);
}

public sealed class IlgpuLinalgTests : LinalgBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);
}

public sealed class IlgpuOptimizerStepsTests : OptimizerStepsBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);
}
