namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// Device memory from <c>cuMemAllocAsync</c> or <c>cuMemAlloc_v2</c> (aligned to at least 256 bytes either way, so the
/// windows kernel's 16-byte path applies whenever the byte offsets allow). The handle is the <c>CUdeviceptr</c>, read only through a <see cref="Lease"/>
/// (see <c>CudaBackend.Hold</c>), so it cannot be freed while a copy or launch is being queued with it. The buffer
/// holds a reference on its context so that it can always be freed, on whichever thread and in whichever order
/// things are released.
/// </summary>
internal sealed class CudaBuffer : DeviceBuffer
{
    private readonly CudaContext _context;

    private CudaBuffer(Backend owner, CudaContext context, ulong pointer, long byteCount, bool counted)
        : base(owner, (IntPtr)(long)pointer, byteCount, counted) => _context = context;

    /// <summary>
    /// Allocates <paramref name="bytes"/> on the device of <paramref name="context"/>, which must be current; zero bytes
    /// still gets a real, distinct allocation. (Memory freed on the same stream is reused by the pool at once, and
    /// deferred frees were done when the operation began, so there is nothing to wait for before reporting out of memory.)
    /// Pass <c>counted: false</c> for the backend's own scratch, which the leak counters do not count.
    /// </summary>
    /// <exception cref="NativeTensorException">Out of memory (the message says how much was asked and how much is free), or another driver error.</exception>
    public static CudaBuffer Allocate(Backend owner, CudaContext context, long bytes, bool counted = true)
    {
        context.AddReference();
        try
        {
            // cuMemAlloc refuses 0 bytes, and a zero handle would read as "invalid": one byte keeps both rules.
            int result = context.Allocate(out ulong pointer, (nuint)Math.Max(bytes, 1));
            string call = context.StreamOrderedMemory ? "cuMemAllocAsync" : "cuMemAlloc_v2";
            if (result == CudaDriver.ErrorOutOfMemory) throw OutOfMemory(owner, context.Driver, call, bytes);
            context.Driver.Check(result, call);
            return new CudaBuffer(owner, context, pointer, bytes, counted);
        }
        catch
        {
            context.Release();
            throw;
        }
    }

    private static NativeTensorException OutOfMemory(Backend owner, CudaDriver driver, string call, long bytes)
    {
        string free = driver.cuMemGetInfo(out nuint available, out nuint total) == CudaDriver.Success
            ? $"{available:N0} of {total:N0} bytes free"
            : "free memory unknown";
        return driver.Error(CudaDriver.ErrorOutOfMemory, call, $"{owner.Name}: out of memory allocating {bytes:N0} bytes ({free})");
    }

    /// <summary>
    /// Frees the memory without waiting for the stream (see <see cref="CudaContext.Free"/>): work already queued that
    /// uses it still finishes first. Never throws: a driver in an error state or already shut down leaves nothing to free.
    /// </summary>
    protected override bool Free(IntPtr memory)
    {
        try
        {
            return _context.Free((ulong)(long)memory);
        }
        finally
        {
            _context.Release();
        }
    }
}
