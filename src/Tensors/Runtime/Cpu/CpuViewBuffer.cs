using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cpu;

/// <summary>
/// Host memory this buffer does not own: a range inside a block that another <see cref="SafeHandle"/> owns (a memory
/// map of a file, a KV cache's backing). The view holds a reference on that owner from creation until it is released,
/// so the block outlives every tensor that points into it, whatever order they are disposed in.
/// </summary>
internal sealed class CpuViewBuffer : DeviceBuffer
{
    private readonly SafeHandle _owner;

    private CpuViewBuffer(Backend backend, SafeHandle owner, IntPtr address, long byteCount) : base(backend, address, byteCount, allocated: false) => _owner = owner;

    /// <summary>A view of <paramref name="byteCount"/> bytes at <paramref name="byteOffset"/> into the block whose address is <paramref name="owner"/>'s handle.</summary>
    /// <exception cref="ObjectDisposedException">The owner is already closed.</exception>
    public static CpuViewBuffer Create(Backend backend, SafeHandle owner, long byteOffset, long byteCount)
    {
        bool held = false;
        owner.DangerousAddRef(ref held);
        try
        {
            IntPtr address = owner.DangerousGetHandle() + (nint)byteOffset;
            // A zero-byte view still needs a non-zero handle, which the owner's address always is.
            return new CpuViewBuffer(backend, owner, address, byteCount);
        }
        catch
        {
            if (held) owner.DangerousRelease();
            throw;
        }
    }

    protected override bool Free(IntPtr handle)
    {
        _owner.DangerousRelease();
        return true;
    }
}
