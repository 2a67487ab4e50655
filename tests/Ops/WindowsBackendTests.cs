using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Ops;

/// <summary>The windows parity suite on the CPU with the widest vectors this machine runs.</summary>
public sealed class CpuWindowsTests : WindowsParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

/// <summary>The CPU kernels with vectors turned off: the scalar fallback.</summary>
public sealed class CpuScalarWindowsTests : WindowsParityTests
{
    protected override Device Device => Backends.CpuScalar;
}

/// <summary>The CPU kernels pinned to Vector128.</summary>
public sealed class Cpu128WindowsTests : WindowsParityTests
{
    protected override Device Device => Backends.Cpu128;
}

/// <summary>The CPU kernels pinned to Vector256.</summary>
public sealed class Cpu256WindowsTests : WindowsParityTests
{
    protected override Device Device => Backends.Cpu256;
}

/// <summary>OpenCL (PoCL in CI, where <c>NATIVETENSOR_REQUIRE=opencl</c> makes a missing platform fail).</summary>
public sealed class OpenClWindowsTests : WindowsParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 60;
}

/// <summary>CUDA; skipped with the driver's reason on machines without an NVIDIA GPU.</summary>
public sealed class CudaWindowsTests : WindowsParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
