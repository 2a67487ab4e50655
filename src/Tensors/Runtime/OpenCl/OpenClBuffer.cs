namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// A tensor's <c>cl_mem</c> (<c>CL_MEM_READ_WRITE</c>), counted in the backend's leak counters and released exactly
/// once. Releasing while kernels that use it are still queued is safe: OpenCL frees the memory only after the
/// reference count is zero and those commands have finished.
/// </summary>
internal sealed unsafe class OpenClBuffer : DeviceBuffer
{
    private OpenClBuffer(OpenClBackend owner, IntPtr memory, long byteCount, bool counted) : base(owner, memory, byteCount, counted) { }

    /// <summary>
    /// Allocates <paramref name="bytes"/> (at least one byte, so an empty tensor still has a real, distinct
    /// <c>cl_mem</c>: OpenCL refuses size 0 with <c>CL_INVALID_BUFFER_SIZE</c>). Pass <c>counted: false</c> for the backend's own scratch, which the leak counters do not count.
    /// </summary>
    /// <exception cref="NativeTensorException">The device cannot hold it; the message gives the sizes.</exception>
    public static OpenClBuffer Allocate(OpenClBackend owner, ContextHandle context, long bytes, bool counted = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes > owner.MaxAllocation)
            throw OpenClStatus.Error(OpenClStatus.MemObjectAllocationFailure, "clCreateBuffer", owner.DescribeAllocation(bytes));
        int status;
        IntPtr memory = OpenClNative.clCreateBuffer(context, OpenClNative.MemReadWrite, (nuint)Math.Max(bytes, 1), null, &status);
        if (status != OpenClStatus.Success || memory == IntPtr.Zero)
            throw owner.Failure(status, "clCreateBuffer", bytes);
        return new OpenClBuffer(owner, memory, bytes, counted);
    }

    protected override bool Free(IntPtr memory) => OpenClNative.clReleaseMemObject(memory) == OpenClStatus.Success;
}
