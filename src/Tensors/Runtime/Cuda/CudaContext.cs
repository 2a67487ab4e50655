namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// One device's primary context and the backend's stream on it, shared by the backend, its buffers and its events.
/// </summary>
/// <remarks>
/// <para>The primary context is the one the CUDA runtime (and so PyTorch, cuBLAS, ...) uses on that device, so our
/// pointers are valid in theirs and no second context eats memory. <c>cuCtxCreate</c> is avoided on purpose: its
/// signature changed in CUDA 13.</para>
/// <para>Lifetime is reference-counted: the backend holds one reference and every live buffer or event one more, so
/// a buffer released after <see cref="Backend.Dispose"/> (by a finaliser, say) still frees into a live context; the
/// last release destroys the stream and releases the primary context.</para>
/// <para>The driver keeps a current context per host thread, and calls arrive on any thread (Parallel loops,
/// finalisers), so every entry point makes this context current first; <c>cuCtxSetCurrent</c> only swaps a
/// thread-local pointer.</para>
/// </remarks>
internal sealed class CudaContext
{
    private long _references = 1;

    private CudaContext(int device, IntPtr handle, IntPtr stream)
    {
        Device = device;
        Handle = handle;
        Stream = stream;
    }

    /// <summary>The <c>CUdevice</c>.</summary>
    public int Device { get; }

    /// <summary>The <c>CUcontext</c>.</summary>
    public IntPtr Handle { get; }

    /// <summary>The backend's non-blocking <c>CUstream</c>: every copy and launch goes here, in order.</summary>
    public IntPtr Stream { get; }

    /// <summary>Retains the device's primary context and creates the stream; the caller owns the first reference.</summary>
    public static CudaContext Retain(int device)
    {
        CudaStatus.Check(CudaNative.cuDevicePrimaryCtxRetain(out IntPtr context, device), "cuDevicePrimaryCtxRetain");
        try
        {
            CudaStatus.Check(CudaNative.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            CudaStatus.Check(CudaNative.cuStreamCreate(out IntPtr stream, CudaNative.StreamNonBlocking), "cuStreamCreate");
            return new CudaContext(device, context, stream);
        }
        catch
        {
            CudaNative.cuDevicePrimaryCtxRelease(device);
            throw;
        }
    }

    /// <summary>Makes this context current on the calling thread.</summary>
    public void MakeCurrent() => CudaStatus.Check(CudaNative.cuCtxSetCurrent(Handle), "cuCtxSetCurrent");

    /// <summary>As <see cref="MakeCurrent"/> for release paths, which must not throw.</summary>
    public bool TryMakeCurrent() => CudaNative.cuCtxSetCurrent(Handle) == CudaNative.Success;

    /// <summary>Waits for everything queued on <see cref="Stream"/>.</summary>
    public void Synchronize() => CudaStatus.Check(CudaNative.cuStreamSynchronize(Stream), "cuStreamSynchronize");

    /// <summary>Takes a reference for a new buffer or event.</summary>
    /// <exception cref="ObjectDisposedException">The context was already released by its last holder.</exception>
    public void AddReference()
    {
        long seen = Interlocked.Read(ref _references);
        while (true)
        {
            ObjectDisposedException.ThrowIf(seen == 0, this);
            long before = Interlocked.CompareExchange(ref _references, seen + 1, seen);
            if (before == seen) return;
            seen = before;
        }
    }

    /// <summary>Drops a reference; the last one drains the stream, destroys it and releases the primary context. Never throws.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0) return;
        if (TryMakeCurrent())
        {
            CudaNative.cuStreamSynchronize(Stream);
            CudaNative.cuStreamDestroy(Stream);
            // Release does not unbind the context from this thread, and a stale current context would be used by the next call here.
            CudaNative.cuCtxSetCurrent(IntPtr.Zero);
        }
        CudaNative.cuDevicePrimaryCtxRelease(Device);
    }
}
