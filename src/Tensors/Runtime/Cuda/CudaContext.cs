using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// One device's primary context and the backend's stream on it, shared by the backend, its buffers and its events.
/// </summary>
/// <remarks>
/// <para>The primary context is the one the CUDA runtime (and so PyTorch, cuBLAS, ...) uses on that device, so our
/// pointers are valid in theirs and no second context eats memory. <c>cuCtxCreate</c> is avoided on purpose: its
/// signature changed in CUDA 13.</para>
/// <para>A <see cref="SafeHandle"/> over the <c>CUcontext</c>, so its lifetime is the handle's reference count: the
/// backend owns the handle (and disposes it), and every live buffer, event, module or pinned block holds one more
/// reference, so one released after <see cref="Backend.Dispose"/> (by a finaliser, say) still frees into a live
/// context; the last release destroys the stream and releases the primary context.</para>
/// <para>The driver keeps a stack of current contexts per host thread, and calls arrive on any thread (Parallel
/// loops, finalisers, a caller's thread that has its own context current for PyTorch or cuBLAS). So every entry point
/// pushes this context for the length of its work and pops it after (<see cref="Enter"/>): whatever the thread had
/// current before is current again afterwards, on every path, release paths included.</para>
/// <para>Memory is stream-ordered where the device supports it (<c>cuMemAllocAsync</c>/<c>cuMemFreeAsync</c> on the
/// stream): a free is queued behind the work that may still use the memory and returns at once, so neither a
/// Dispose nor the finaliser thread waits for the stream. Elsewhere a free is deferred to the start of the next
/// operation, which drains the stream once and frees everything deferred.</para>
/// </remarks>
internal sealed class CudaContext : SafeHandle
{
    private readonly ConcurrentQueue<ulong> _deferredFrees = new();
    private readonly object _drain = new();

    private CudaContext(CudaDriver driver, int device, IntPtr handle, IntPtr stream, bool streamOrderedMemory) : base(IntPtr.Zero, ownsHandle: true)
    {
        Driver = driver;
        Device = device;
        SetHandle(handle);
        Stream = stream;
        StreamOrderedMemory = streamOrderedMemory;
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>The driver every call goes through.</summary>
    public CudaDriver Driver { get; }

    /// <summary>The <c>CUdevice</c>.</summary>
    public int Device { get; }

    /// <summary>The <c>CUcontext</c>; valid while the caller holds a reference.</summary>
    public IntPtr Handle => handle;

    /// <summary>The backend's non-blocking <c>CUstream</c>: every copy and launch goes here, in order.</summary>
    public IntPtr Stream { get; }

    /// <summary>Whether memory is allocated and freed in stream order (the device supports memory pools).</summary>
    public bool StreamOrderedMemory { get; }

    /// <summary>Retains the device's primary context and creates the stream; the caller owns the handle and disposes it.</summary>
    public static CudaContext Retain(CudaDriver driver, int device)
    {
        driver.Check(driver.cuDevicePrimaryCtxRetain(out IntPtr context, device), "cuDevicePrimaryCtxRetain");
        try
        {
            driver.Check(driver.cuCtxPushCurrent(context), "cuCtxPushCurrent_v2");
            try
            {
                driver.Check(driver.cuStreamCreate(out IntPtr stream, CudaDriver.StreamNonBlocking), "cuStreamCreate");
                bool pools = driver.HasStreamOrderedAllocator
                    && driver.cuDeviceGetAttribute(out int supported, CudaDriver.AttributeMemoryPoolsSupported, device) == CudaDriver.Success
                    && supported != 0;
                return new CudaContext(driver, device, context, stream, pools);
            }
            finally
            {
                driver.cuCtxPopCurrent(out _);
            }
        }
        catch
        {
            driver.cuDevicePrimaryCtxRelease(device);
            throw;
        }
    }

    /// <summary>Makes this context current on the calling thread until the returned scope is disposed, which restores what was current before.</summary>
    /// <exception cref="NativeTensorException">The driver refused (its error name is in the message).</exception>
    public Current Enter()
    {
        Driver.Check(Driver.cuCtxPushCurrent(Handle), "cuCtxPushCurrent_v2");
        return new Current(this);
    }

    /// <summary>As <see cref="Enter"/> for release paths, which must not throw; false (and an empty scope) when the driver refused.</summary>
    public bool TryEnter(out Current scope)
    {
        bool entered = Driver.cuCtxPushCurrent(Handle) == CudaDriver.Success;
        scope = entered ? new Current(this) : default;
        return entered;
    }

    /// <summary>The span in which this context is current on one thread; see <see cref="Enter"/>.</summary>
    public ref struct Current
    {
        private CudaContext? _context;

        internal Current(CudaContext context) => _context = context;

        /// <summary>Pops the context, restoring the thread's previous one. Never throws.</summary>
        public void Dispose()
        {
            _context?.Driver.cuCtxPopCurrent(out _);
            _context = null;
        }
    }

    /// <summary>Waits for everything queued on <see cref="Stream"/>; the context must be current.</summary>
    public void Synchronize() => Driver.Check(Driver.cuStreamSynchronize(Stream), "cuStreamSynchronize");

    /// <summary>
    /// Allocates <paramref name="bytes"/> of device memory, in stream order where supported; the context must be
    /// current. Returns the driver's status.
    /// </summary>
    public int Allocate(out ulong pointer, nuint bytes) =>
        StreamOrderedMemory ? Driver.cuMemAllocAsync(out pointer, bytes, Stream) : Driver.cuMemAlloc(out pointer, bytes);

    /// <summary>
    /// Frees memory from <see cref="Allocate"/> without waiting for the stream: queued behind the stream's work where
    /// memory is stream-ordered, else deferred to <see cref="FreeDeferred"/>. Any thread, no context needed; never throws.
    /// </summary>
    public bool Free(ulong pointer)
    {
        if (!StreamOrderedMemory)
        {
            _deferredFrees.Enqueue(pointer);
            return true;
        }
        if (!TryEnter(out Current scope)) return false;
        using (scope) return Driver.cuMemFreeAsync(pointer, Stream) == CudaDriver.Success;
    }

    /// <summary>
    /// Frees what <see cref="Free"/> deferred, after draining the stream once (some of it may still be in use by queued
    /// work). Called at the start of every operation and at the last release; the context must be current. Never throws.
    /// </summary>
    public void FreeDeferred()
    {
        if (_deferredFrees.IsEmpty) return;
        lock (_drain)
        {
            // Only what was deferred before the synchronisation is known to be out of use after it: a buffer deferred
            // while this thread waits may have had work queued behind the wait, so it stays for the next drain. Drains
            // are serialised, so the first `count` entries are exactly those counted.
            int count = _deferredFrees.Count;
            Driver.cuStreamSynchronize(Stream);
            for (int i = 0; i < count && _deferredFrees.TryDequeue(out ulong pointer); i++) Driver.cuMemFree(pointer);
        }
    }

    /// <summary>Takes a reference for a new buffer, event, module or pinned block; <see cref="Release"/> gives it back.</summary>
    /// <exception cref="ObjectDisposedException">The owner already disposed the context.</exception>
    public void AddReference()
    {
        bool added = false;
        DangerousAddRef(ref added);
    }

    /// <summary>Drops a reference taken by <see cref="AddReference"/>; the last one releases the context (<see cref="ReleaseHandle"/>). Never throws.</summary>
    public void Release() => DangerousRelease();

    /// <summary>
    /// The last reference is gone: drains the stream, frees what was deferred, destroys the stream and releases the
    /// primary context. Never throws.
    /// </summary>
    protected override bool ReleaseHandle()
    {
        if (TryEnter(out Current scope))
            using (scope)
            {
                Driver.cuStreamSynchronize(Stream);
                FreeDeferred();
                Driver.cuStreamDestroy(Stream);
            }
        return Driver.cuDevicePrimaryCtxRelease(Device) == CudaDriver.Success;
    }
}
