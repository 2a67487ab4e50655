using System.Runtime.InteropServices;

namespace NativeTensor.Runtime;

/// <summary>
/// A block of device memory owned by a <see cref="Backend"/>. The handle is the backend's own pointer
/// (a host address, a <c>cl_mem</c>, a <c>CUdeviceptr</c>); release frees it exactly once, on
/// <see cref="SafeHandle.Dispose()"/> or, as a last resort, in the finaliser.
/// </summary>
internal abstract class DeviceBuffer : SafeHandle
{
    protected DeviceBuffer(Backend owner, IntPtr handle, long byteCount) : base(IntPtr.Zero, ownsHandle: true)
    {
        Owner = owner;
        ByteCount = byteCount;
        SetHandle(handle);
        owner.Track(byteCount);
    }

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
        Owner.Untrack(ByteCount);
        return freed;
    }
}
