namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// A backend that runs the kernels of <c>kernels/*.cl</c>: OpenCL (the sources as OpenCL C) and CUDA (the same sources
/// as CUDA C through NVRTC). Every op family is written here once, in the file of its name (<c>Windows.cs</c>,
/// <c>Precision.cs</c>, ...): the in-bounds checks, which kernels it builds before touching anything, the launch shape,
/// the arguments in the order the kernel's <see cref="DeviceKernel"/> declares them, and the flag protocols. A backend
/// folder implements only the small set of primitives below, plus memory and transfers.
/// </summary>
/// <remarks>
/// The public ops in <c>Ops/</c> check the user-facing rules before they dispatch; what is checked here is what keeps a
/// kernel in bounds whatever an internal caller passes: each buffer is this backend's and holds every byte the launch
/// may touch (sizes computed with checked arithmetic), and an output is not also an input the kernel reads through a
/// restrict pointer.
/// </remarks>
internal abstract partial class KernelBackend : Backend
{
    /// <summary>
    /// Builds <paramref name="kernel"/> for this device on first use (cached for the backend's life) and says how it may
    /// be launched. Call it for every kernel an operation needs before anything is written, so that a build failure, or a
    /// device that cannot run the kernel as the reference demands (<see cref="DeviceKernel.Needs"/>, an exact group size
    /// it cannot hold), leaves every buffer untouched.
    /// </summary>
    /// <exception cref="NativeTensorException">The build failed or the device cannot run the kernel; the message says why, with the runtime's error name.</exception>
    protected abstract KernelLimits Prepare(DeviceKernel kernel);

    /// <summary>
    /// Queues <paramref name="kernel"/> over <paramref name="shape"/>. The arguments were checked against the
    /// declaration; each buffer must be held (leased) from before its handle is read until the enqueue has returned.
    /// </summary>
    protected abstract void Enqueue(DeviceKernel kernel, in LaunchShape shape, ReadOnlySpan<KernelArgument> arguments);

    /// <summary>Queues <c>buffer[0 .. words) = value</c> (32-bit words) behind the work already queued; does not wait.</summary>
    protected abstract void Fill(DeviceBuffer buffer, uint value, long words);

    /// <summary>
    /// Copies <paramref name="values"/> into a device scratch buffer and returns it, valid for launches queued before the
    /// next call; returns as soon as <paramref name="values"/> may be reused. Callers serialise calls and the launches that
    /// read the result (<see cref="_stagingGate"/>).
    /// </summary>
    protected abstract DeviceBuffer Stage(ReadOnlySpan<long> values);

    /// <summary>Device memory for the backend's own use (flags): not counted as an allocation of the caller's.</summary>
    protected abstract DeviceBuffer AllocateScratch(long bytes);

    /// <summary>Every kernel of <c>kernels/*.cl</c>, family by family.</summary>
    public static IEnumerable<DeviceKernel> Declarations =>
        [.. WindowsKernels.All, .. PrecisionKernels.All, .. UnscaleKernels.All, .. OptimizerStepsKernels.All, .. LinalgKernels.All, .. MomentsKernels.All, .. AttentionKernels.All];

    /// <summary>Checks the arguments against the declaration, then queues the launch.</summary>
    private void Launch(DeviceKernel kernel, in LaunchShape shape, params ReadOnlySpan<KernelArgument> arguments)
    {
        kernel.Check(arguments);
        Enqueue(kernel, shape, arguments);
    }

    /// <summary>
    /// Throws unless <paramref name="buffer"/> is this backend's and <paramref name="bytes"/> from 0 lie inside it. A
    /// driver given a bad range would corrupt other allocations rather than fail.
    /// </summary>
    protected void CheckRange(DeviceBuffer buffer, long bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (!ReferenceEquals(buffer.Owner, this))
            throw new ArgumentException($"{name} belongs to {Device.KindName(buffer.Owner.Kind)} '{buffer.Owner.Name}', not to {Device.KindName(Kind)} '{Name}'", name);
        if (bytes < 0 || bytes > buffer.ByteCount)
            throw new ArgumentOutOfRangeException(name, $"{name}: bytes [0, {bytes}) lie outside its {buffer.ByteCount} bytes");
    }

    /// <summary>A buffer the backend keeps for itself, allocated on first use under the gate that guards it.</summary>
    private DeviceBuffer Scratch(ref DeviceBuffer? slot, long bytes) => slot ??= AllocateScratch(bytes);

    /// <summary>The scratch buffer of <see cref="StageByBlockingWrite"/>, guarded by <see cref="_stagingGate"/>.</summary>
    private DeviceBuffer? _blockingStage;

    /// <summary>
    /// <see cref="Stage"/> for a backend whose <see cref="Backend.Write"/> blocks until the bytes are on the device (OpenCL,
    /// ILGPU): one scratch buffer serves every batch, since the in-order queue runs the write after the previous batch's
    /// kernel has read it. Growth at least doubles, so rising batch sizes allocate O(log n) times and a steady one never.
    /// With <paramref name="drainBeforeFree"/> the queue is drained before the outgrown buffer is freed, for a runtime that
    /// frees at once even with work queued on the memory (ILGPU); OpenCL's queued commands hold their own references.
    /// Runs under <see cref="_stagingGate"/>, as every <see cref="Stage"/> does.
    /// </summary>
    protected DeviceBuffer StageByBlockingWrite(ReadOnlySpan<long> values, bool drainBeforeFree)
    {
        long bytes = (long)values.Length * sizeof(long);
        if (_blockingStage is null || _blockingStage.ByteCount < bytes)
        {
            DeviceBuffer grown = AllocateScratch(Math.Max(bytes, Math.Max(256, 2 * (_blockingStage?.ByteCount ?? 0))));
            if (_blockingStage is not null && drainBeforeFree) Synchronize();
            _blockingStage?.Dispose();
            _blockingStage = grown;
        }
        Write(_blockingStage, 0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
        return _blockingStage;
    }

    /// <summary>Frees the backend's scratch; call from Dispose once queued work is drained, while memory can still be freed.</summary>
    protected void DisposeScratch()
    {
        lock (_stagingGate)
        {
            _sinkFlag?.Dispose();
            _blockingStage?.Dispose();
        }
        lock (_flagGate) _badFlag?.Dispose();
        lock (_nonFiniteGate) _nonFiniteFlag?.Dispose();
    }

    private static uint Bits(float value) => BitConverter.SingleToUInt32Bits(value);
}
