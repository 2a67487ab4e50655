using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// A driver object that lives in one context (an event, a module, a pinned block): a <see cref="SafeHandle"/> holding a
/// reference on that context, so it is destroyed exactly once, on Dispose or by the finaliser of last resort, on any
/// thread, with its context pushed for the call and released after it.
/// </summary>
internal abstract class ContextBoundHandle : SafeHandle
{
    protected ContextBoundHandle(CudaContext context) : base(IntPtr.Zero, ownsHandle: true) => Context = context;

    /// <summary>The context the object lives in.</summary>
    public CudaContext Context { get; }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>
    /// Creates the object with <paramref name="create"/> (the context must be current) and wraps it, taking a reference on
    /// the context first so the context cannot go while the object exists.
    /// </summary>
    protected static T Create<T>(CudaContext context, Func<CudaContext, T> wrap, Func<CudaDriver, (int Status, IntPtr Handle)> create, string call)
        where T : ContextBoundHandle
    {
        context.AddReference();
        try
        {
            (int status, IntPtr created) = create(context.Driver);
            context.Driver.Check(status, call);
            T wrapped = wrap(context);
            wrapped.SetHandle(created);
            return wrapped;
        }
        catch
        {
            context.Release();
            throw;
        }
    }

    /// <summary>The driver call that destroys the object; returns its status.</summary>
    protected abstract int Destroy(CudaDriver driver, IntPtr value);

    protected sealed override bool ReleaseHandle()
    {
        try
        {
            if (!Context.TryEnter(out CudaContext.Current current)) return false;
            using (current) return Destroy(Context.Driver, handle) == CudaDriver.Success;
        }
        finally
        {
            Context.Release();
        }
    }
}

/// <summary>A <c>CUevent</c> (<c>cuEventCreate</c> / <c>cuEventDestroy_v2</c>).</summary>
internal sealed class CudaEventHandle : ContextBoundHandle
{
    private CudaEventHandle(CudaContext context) : base(context) { }

    /// <summary>Creates an event with <paramref name="flags"/>; the context must be current.</summary>
    public static CudaEventHandle Create(CudaContext context, uint flags) =>
        Create(context, c => new CudaEventHandle(c), driver => (driver.cuEventCreate(out IntPtr e, flags), e), "cuEventCreate");

    protected override int Destroy(CudaDriver driver, IntPtr value) => driver.cuEventDestroy(value);
}

/// <summary>A <c>CUmodule</c> loaded from a CUBIN or PTX image (<c>cuModuleLoadData</c> / <c>cuModuleUnload</c>).</summary>
internal sealed class CudaModuleHandle : ContextBoundHandle
{
    private CudaModuleHandle(CudaContext context) : base(context) { }

    /// <summary>Loads <paramref name="image"/>; the context must be current. A refusal keeps the driver's status for the caller's message.</summary>
    public static unsafe (CudaModuleHandle? Module, int Status) Load(CudaContext context, byte[] image)
    {
        context.AddReference();
        int status;
        IntPtr module;
        fixed (byte* bytes = image) status = context.Driver.cuModuleLoadData(out module, bytes);
        if (status != CudaDriver.Success)
        {
            context.Release();
            return (null, status);
        }
        var handle = new CudaModuleHandle(context);
        handle.SetHandle(module);
        return (handle, status);
    }

    protected override int Destroy(CudaDriver driver, IntPtr value) => driver.cuModuleUnload(value);
}

/// <summary>
/// Page-locked host memory from <c>cuMemAllocHost_v2</c>, which the DMA engine reads after the call that queued the copy
/// has returned.
/// </summary>
internal sealed class PinnedHostMemory : ContextBoundHandle
{
    private PinnedHostMemory(CudaContext context, long byteCount) : base(context) => ByteCount = byteCount;

    public long ByteCount { get; }

    /// <summary>Allocates <paramref name="bytes"/>; the context must be current.</summary>
    public static PinnedHostMemory Allocate(CudaContext context, long bytes) =>
        Create(context, c => new PinnedHostMemory(c, bytes), driver => (driver.cuMemAllocHost(out IntPtr p, (nuint)bytes), p), "cuMemAllocHost_v2");

    protected override int Destroy(CudaDriver driver, IntPtr value) => driver.cuMemFreeHost(value);
}
