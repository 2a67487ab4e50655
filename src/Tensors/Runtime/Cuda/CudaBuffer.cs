namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// Device memory from <c>cuMemAlloc_v2</c> (aligned to at least 256 bytes, so the windows kernel's 16-byte path applies
/// whenever the byte offsets allow). The handle is the <c>CUdeviceptr</c>, read only through a <see cref="Lease"/>
/// (see <c>CudaBackend.Hold</c>), so it cannot be freed while a copy or launch is being queued with it. The buffer
/// holds a reference on its context so that it can always be freed, on whichever thread and in whichever order
/// things are released.
/// </summary>
internal sealed class CudaBuffer : DeviceBuffer
{
    private readonly CudaContext _context;

    private CudaBuffer(Backend owner, CudaContext context, ulong pointer, long byteCount)
        : base(owner, (IntPtr)(long)pointer, byteCount) => _context = context;

    /// <summary>Allocates <paramref name="bytes"/> on the device of <paramref name="context"/>; zero bytes still gets a real, distinct allocation.</summary>
    /// <exception cref="NativeTensorException">Out of memory (the message says how much was asked and how much is free), or another driver error.</exception>
    public static CudaBuffer Allocate(Backend owner, CudaContext context, long bytes)
    {
        context.AddReference();
        try
        {
            context.MakeCurrent();
            // cuMemAlloc refuses 0 bytes, and a zero handle would read as "invalid": one byte keeps both rules.
            int result = CudaNative.cuMemAlloc(out ulong pointer, (nuint)Math.Max(bytes, 1));
            if (result == CudaNative.ErrorOutOfMemory) throw OutOfMemory(owner, bytes);
            CudaStatus.Check(result, "cuMemAlloc_v2");
            return new CudaBuffer(owner, context, pointer, bytes);
        }
        catch
        {
            context.Release();
            throw;
        }
    }

    private static NativeTensorException OutOfMemory(Backend owner, long bytes)
    {
        string free = CudaNative.cuMemGetInfo(out nuint available, out nuint total) == CudaNative.Success
            ? $"{available:N0} of {total:N0} bytes free"
            : "free memory unknown";
        return CudaStatus.Error(CudaNative.ErrorOutOfMemory, "cuMemAlloc_v2",
            $"{owner.Name}: out of memory allocating {bytes:N0} bytes ({free})");
    }

    /// <summary>
    /// Waits for the stream, so no queued copy or kernel still uses the memory, then frees it. Never throws: a driver
    /// in an error state or already shut down leaves nothing to free.
    /// </summary>
    protected override bool Free(IntPtr memory)
    {
        try
        {
            if (!_context.TryMakeCurrent()) return false;
            CudaNative.cuStreamSynchronize(_context.Stream);
            return CudaNative.cuMemFree((ulong)(long)memory) == CudaNative.Success;
        }
        finally
        {
            _context.Release();
        }
    }
}
