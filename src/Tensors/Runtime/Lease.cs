using System.Runtime.InteropServices;

namespace NativeTensor.Runtime;

/// <summary>
/// Holds a reference on a <see cref="SafeHandle"/> while its raw pointer is in use (a CPU kernel running over it, an
/// argument array, a kernel argument between setting it and the enqueue that captures it), so neither a Dispose on
/// another thread nor the finaliser of an unreachable tensor can free it underneath. Throws
/// <see cref="ObjectDisposedException"/> when the handle is already closed, which is how a use-after-dispose of a
/// tensor surfaces instead of a crash.
/// </summary>
internal ref struct Lease
{
    private readonly SafeHandle _handle;
    private bool _held;

    public Lease(SafeHandle handle)
    {
        _handle = handle;
        handle.DangerousAddRef(ref _held);
    }

    public readonly IntPtr Pointer => _handle.DangerousGetHandle();

    public void Dispose()
    {
        if (_held) _handle.DangerousRelease();
        _held = false;
    }
}
