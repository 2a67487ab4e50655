using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// Page-locked host memory from <c>cuMemAllocHost_v2</c>, which the DMA engine reads after the call that queued the copy
/// has returned. Holds a reference on its context, so it can be freed on any thread and in any order, by Dispose or by
/// the finaliser of last resort.
/// </summary>
internal sealed class PinnedHostMemory : SafeHandle
{
    private readonly CudaContext _context;

    private PinnedHostMemory(CudaContext context, IntPtr pointer, long byteCount) : base(IntPtr.Zero, ownsHandle: true)
    {
        _context = context;
        ByteCount = byteCount;
        SetHandle(pointer);
    }

    public long ByteCount { get; }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Allocates <paramref name="bytes"/>; the context must be current.</summary>
    public static PinnedHostMemory Allocate(CudaContext context, long bytes)
    {
        context.AddReference();
        try
        {
            context.Driver.Check(context.Driver.cuMemAllocHost(out IntPtr pointer, (nuint)bytes), "cuMemAllocHost_v2");
            return new PinnedHostMemory(context, pointer, bytes);
        }
        catch
        {
            context.Release();
            throw;
        }
    }

    protected override bool ReleaseHandle()
    {
        try
        {
            if (!_context.TryEnter(out CudaContext.Current current)) return false;
            using (current) return _context.Driver.cuMemFreeHost(handle) == CudaDriver.Success;
        }
        finally
        {
            _context.Release();
        }
    }
}
