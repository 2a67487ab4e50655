using System.Collections.Concurrent;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The primitives every op family of <see cref="KernelBackend"/> launches through, on OpenCL: kernels built from the
/// declarations, enqueued on the one in-order queue; fills; and host data staged by blocking writes.
/// </summary>
internal sealed unsafe partial class OpenClBackend
{
    /// <summary>What one declared kernel became on this device.</summary>
    private sealed record Built(OpenClKernel Kernel, KernelLimits Limits);

    private readonly ConcurrentDictionary<int, Built> _built = new();


    /// <summary>
    /// Builds the kernel's program (with <c>-cl-fp32-correctly-rounded-divide-sqrt</c> where the kernel asks for it and the
    /// device offers it), and refuses a kernel this device cannot run as the reference demands: one that multiplies on a
    /// device that flushes subnormals, or one whose exact group size exceeds what the device gives it.
    /// </summary>
    protected override KernelLimits Prepare(DeviceKernel kernel)
    {
        if (_built.TryGetValue(kernel.Slot, out Built? built)) return built.Limits;
        if (kernel.Needs.HasFlag(KernelNeeds.Subnormals) && !KeepsSubnormals)
            throw new NativeTensorException(
                $"opencl: '{Name}' flushes binary32 subnormals (no CL_FP_DENORM), so {kernel.Entry} could not match the reference bit for bit; run it on the cpu instead")
            { ErrorName = "CL_FP_DENORM missing" };
        string options = kernel.Needs.HasFlag(KernelNeeds.CorrectlyRoundedDivideSqrt) && RoundsDivideAndSqrtCorrectly
            ? BuildOptions + " -cl-fp32-correctly-rounded-divide-sqrt"
            : BuildOptions;
        OpenClKernel compiled = Program(KernelSources.Get(kernel.Source), options).Kernel(kernel.Entry);
        int most = (int)Math.Min(compiled.MaxGroupSize, MaxGroupSize);
        if (kernel.GroupThreads > most)
            throw new NativeTensorException(
                $"opencl: '{Name}' runs {kernel.Entry} in groups of at most {most} work-items, but it needs {kernel.GroupThreads}; run it on the cpu instead")
            { ErrorName = "CL_INVALID_WORK_GROUP_SIZE" };
        // Resident threads are not an OpenCL query: compute units times the largest group is what the device could hold.
        var limits = new KernelLimits(most, (int)Math.Min(compiled.GroupMultiple, most), (long)ComputeUnits * MaxGroupSize, AddressBits);
        return _built.GetOrAdd(kernel.Slot, new Built(compiled, limits)).Limits;
    }

    protected override void Enqueue(DeviceKernel kernel, in LaunchShape shape, ReadOnlySpan<KernelArgument> arguments)
    {
        foreach (KernelArgument argument in arguments)
            if (argument.Buffer is { } buffer) CheckRange(buffer, 0, 0, kernel.Entry);
        Prepare(kernel);
        _built[kernel.Slot].Kernel.Launch(Queue, shape, arguments);
    }

    protected override void Fill(DeviceBuffer buffer, uint value, long words)
    {
        CheckRange(buffer, 0, words * sizeof(uint), nameof(buffer));
        if (words == 0) return;
        using var lease = new Lease(buffer);
        Check(OpenClNative.clEnqueueFillBuffer(Queue, lease.Pointer, &value, sizeof(uint), 0, (nuint)(words * sizeof(uint)), 0, null, null),
            "clEnqueueFillBuffer");
    }

    protected override DeviceBuffer Stage(ReadOnlySpan<long> values) => StageByBlockingWrite(values, drainBeforeFree: false);

    protected override DeviceBuffer AllocateScratch(long bytes) => OpenClBuffer.Allocate(this, Open().Context, bytes, counted: false);

    /// <summary>
    /// The program of <paramref name="source"/> built with <c>-cl-kernel-arg-info</c>, so its kernels can say what their
    /// parameters are called and typed: how the tests hold every <see cref="DeviceKernel"/> against its source.
    /// </summary>
    internal OpenClProgram ProgramWithArgumentInfo(string source) => Program(KernelSources.Get(source), BuildOptions + " -cl-kernel-arg-info");
}
