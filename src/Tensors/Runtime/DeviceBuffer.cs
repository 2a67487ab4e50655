using System.Runtime.InteropServices;

namespace NativeTensor.Runtime;

/// <summary>
/// A block of device memory owned by a <see cref="Backend"/>. The handle is the backend's own pointer
/// (a host address, a <c>cl_mem</c>, a <c>CUdeviceptr</c>); release frees it exactly once, on
/// <see cref="SafeHandle.Dispose()"/> or, as a last resort, in the finaliser.
/// </summary>
internal abstract class DeviceBuffer : SafeHandle
{
    /// <param name="owner">The backend whose memory this is.</param>
    /// <param name="handle">The backend's pointer.</param>
    /// <param name="byteCount">Size in bytes.</param>
    /// <param name="allocated">
    /// Whether the backend allocated this memory, so its live-buffer counters count it; false for a view of memory
    /// something else owns (a mapped file), which is no allocation of the backend's.
    /// </param>
    protected DeviceBuffer(Backend owner, IntPtr handle, long byteCount, bool allocated = true) : base(IntPtr.Zero, ownsHandle: true)
    {
        Owner = owner;
        ByteCount = byteCount;
        Allocated = allocated;
        SetHandle(handle);
        if (allocated) owner.Track(byteCount);
    }

    /// <summary>Whether the backend's counters count this buffer (see the constructor).</summary>
    private bool Allocated { get; }

    /// <summary>The backend that allocated this buffer.</summary>
    public Backend Owner { get; }

    /// <summary>Size in bytes.</summary>
    public long ByteCount { get; }

    /// <inheritdoc/>
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Frees the native memory; must not throw.</summary>
    protected abstract bool Free(IntPtr handle);

    /// <inheritdoc/>
    protected sealed override bool ReleaseHandle()
    {
        bool freed = Free(handle);
        if (Allocated) Owner.Untrack(ByteCount);
        return freed;
    }
}
