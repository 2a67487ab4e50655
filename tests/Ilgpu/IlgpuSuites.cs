using NativeTensor.Runtime.Ilgpu;
using NativeTensor.Tests.Infrastructure;
using NativeTensor.Tests.Ops;
using NativeTensor.Tests.Runtime;
using NativeTensor.Tests.Training;

namespace NativeTensor.Tests.Ilgpu;

// Every parity and backend suite on ILGPU: ilgpu:cuda:0 where ILGPU sees a GPU, else its emulated ilgpu:cpu (see
// Backends.Require). The emulated CPU runs each thread of a group as an OS thread, so a launch costs milliseconds: the
// property suites run fewer random cases here, every case kept.

/// <summary>Runs per property on ILGPU: each case launches several kernels on the emulated CPU.</summary>
file static class IlgpuRuns
{
    public const int Property = 8;
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

    /// <summary>
    /// The emulated CPU runs the kernels as .NET code, which rounds every operation as the CPU backend does. PTX add and
    /// multiply carry no <c>.rn</c>, so ptxas may fuse them: on a GPU only the derived bound is promised.
    /// </summary>
    protected override bool BitIdenticalToCpu => ((IlgpuBackend)Device.Backend).AcceleratorType == ILGPU.Runtime.AcceleratorType.CPU;
}

public sealed class IlgpuLinalgParityTests : LinalgParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Ilgpu);

    protected override int PropertyRuns => IlgpuRuns.Property;
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
