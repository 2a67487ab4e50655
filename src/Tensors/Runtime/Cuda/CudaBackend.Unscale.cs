namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// The loss-scaling step on CUDA: the grid-stride kernels of <c>kernels/unscale.cl</c> (see its header for the math,
/// the flag protocol and why NVRTC's options keep subnormals), one launch per gradient inside one <see cref="Work"/>,
/// each gradient leased while its launch is queued. One flag serves the whole list: cuMemsetD32Async resets it once,
/// cuMemcpyDtoHAsync reads it back once at the end, and one stream synchronisation waits for both.
/// </summary>
internal sealed unsafe partial class CudaBackend
{
    private const string UnscaleSource = "unscale.cl";

    /// <summary>Serialises the reset, launches and read-back of the non-finite flag.</summary>
    private readonly object _nonFiniteLock = new();

    private ulong _nonFiniteFlag;

    public override bool UnscaleAndCheck(IReadOnlyList<(DeviceBuffer Buffer, DType DType, long Count)> gradients, float inverseScale)
    {
        foreach ((DeviceBuffer buffer, DType dtype, long count) in gradients)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count);
            using Lease checkedOnly = Hold(buffer, 0, checked(count * dtype.SizeOf()), nameof(gradients));
            _ = UnscaleKernel(dtype);
        }
        uint scaleBits = BitConverter.SingleToUInt32Bits(inverseScale);
        uint found = 0;
        using (Work work = Begin())
        {
            lock (_nonFiniteLock)
            {
                IntPtr stream = work.Context.Stream;
                _driver.Check(_driver.cuMemsetD32Async(_nonFiniteFlag, 0, 1, stream), "cuMemsetD32Async");
                ulong flag = _nonFiniteFlag;
                ulong data = 0;
                long elements = 0;
                // unscale_*(data, count, scale_bits, found): a pointer to each argument's value, in order. cuLaunchKernel
                // copies the values before returning, so one array serves every gradient.
                void** arguments = stackalloc void*[4];
                arguments[0] = &data;
                arguments[1] = &elements;
                arguments[2] = &scaleBits;
                arguments[3] = &flag;
                // Both functions are loaded before the first launch: a compile or load failure then leaves every gradient
                // untouched, never a list half scaled that a retry would scale twice.
                IntPtr single = _kernels.Function(UnscaleSource, UnscaleKernel(DType.Float32));
                IntPtr bfloat16 = _kernels.Function(UnscaleSource, UnscaleKernel(DType.BFloat16));
                foreach ((DeviceBuffer buffer, DType dtype, long count) in gradients)
                {
                    if (count == 0) continue;
                    string name = UnscaleKernel(dtype);
                    IntPtr kernel = dtype == DType.Float32 ? single : bfloat16;
                    using Lease target = Hold(buffer, 0, checked(count * dtype.SizeOf()), nameof(gradients));
                    data = At(target, 0);
                    elements = count;
                    Launch(work, kernel, name, ConvertBlocks(count, ResidentThreads), 1, ConvertBlockThreads, arguments);
                }
                _driver.Check(_driver.cuMemcpyDtoHAsync(&found, _nonFiniteFlag, sizeof(uint), stream), "cuMemcpyDtoHAsync_v2");
                work.Context.Synchronize();
            }
        }
        return found != 0;
    }
}
