using NativeTensor.Cpu;
using NativeTensor.Runtime.Cpu;
using Xunit.Sdk;

namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// The devices a parity suite runs on. A missing backend skips its tests with the reason discovery gave,
/// except that a kind named in <c>NATIVETENSOR_REQUIRE</c> (comma-separated: <c>opencl</c>, <c>cuda</c>, <c>ilgpu</c>)
/// turns that skip into a failure, so CI cannot go green without running them.
/// </summary>
public static class Backends
{
    /// <summary>The CPU backend pinned to scalar code, to test the fallback path on a machine with vectors.</summary>
    public static Device CpuScalar { get; } = new(new CpuBackend(SimdWidth.Scalar), 0);

    /// <summary>The CPU backend pinned to 128-bit vectors.</summary>
    public static Device Cpu128 { get; } = new(new CpuBackend(SimdWidth.V128), 0);

    /// <summary>The CPU backend pinned to 256-bit vectors.</summary>
    public static Device Cpu256 { get; } = new(new CpuBackend(SimdWidth.V256), 0);

    /// <summary>
    /// The first device of <paramref name="kind"/>; skips (or fails, when required) if there is none. For ILGPU that is
    /// <c>ilgpu:cuda:0</c> where ILGPU sees a GPU, else its emulated <c>ilgpu:cpu</c> (not an OpenCL device ILGPU may
    /// see, which refuses the kernels that need exact rounding).
    /// </summary>
    public static Device Require(DeviceKind kind)
    {
        Device? device = kind == DeviceKind.Ilgpu
            ? Device.Available.FirstOrDefault(d => d.Spec == "ilgpu:cuda:0") ?? Device.Available.FirstOrDefault(d => d.Spec == "ilgpu:cpu")
            : Device.Available.FirstOrDefault(d => d.Kind == kind);
        if (device is not null) return device;
        string reason = $"no {Device.KindName(kind)} device: {Device.UnavailableReason(kind)}";
        if (IsRequired(kind))
            throw new InvalidOperationException($"{reason}, but NATIVETENSOR_REQUIRE names {Device.KindName(kind)}");
        throw SkipException.ForSkip(reason);
    }

    public static bool IsRequired(DeviceKind kind) => IsRequired(Device.KindName(kind));

    /// <summary>
    /// Whether <c>NATIVETENSOR_REQUIRE</c> names <paramref name="what"/>: a device kind, or a tool some tests need
    /// (<c>cc</c> for the fake CUDA driver, <c>clang-cuda</c> for the kernels' CUDA compile check).
    /// </summary>
    public static bool IsRequired(string what) =>
        (Environment.GetEnvironmentVariable("NATIVETENSOR_REQUIRE") ?? "")
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Contains(what, StringComparer.OrdinalIgnoreCase);

    /// <summary>Skips with <paramref name="reason"/>, or fails when <c>NATIVETENSOR_REQUIRE</c> names <paramref name="what"/>.</summary>
    public static Exception Missing(string what, string reason) => IsRequired(what)
        ? new InvalidOperationException($"{reason}, but NATIVETENSOR_REQUIRE names {what}")
        : SkipException.ForSkip(reason);
}
