using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// An OpenCL object the backend owns, released exactly once through its <c>clRelease*</c> function on
/// <see cref="SafeHandle.Dispose()"/> or by the finaliser. Passing these (not raw pointers) to
/// <see cref="OpenClNative"/> makes the generated interop code add a reference for the duration of each call, so a handle
/// disposed on another thread cannot be freed under a call that is using it.
/// </summary>
internal abstract class OpenClHandle : SafeHandle
{
    protected OpenClHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    /// <inheritdoc/>
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>The raw pointer, for the few calls that take arrays of handles; the caller holds a <see cref="Lease"/>.</summary>
    public IntPtr Raw => handle;

    /// <summary>Throws the failed creation call's status when the handle came back null.</summary>
    public void CheckCreated(int status, string call)
    {
        OpenClStatus.Check(status, call);
        if (IsInvalid) throw OpenClStatus.Error(status, call, "returned a null handle");
    }
}

/// <summary>A <c>cl_context</c>.</summary>
internal sealed class ContextHandle : OpenClHandle
{
    protected override bool ReleaseHandle() => OpenClNative.clReleaseContext(handle) == OpenClStatus.Success;
}

/// <summary>A <c>cl_command_queue</c>.</summary>
internal sealed class QueueHandle : OpenClHandle
{
    protected override bool ReleaseHandle() => OpenClNative.clReleaseCommandQueue(handle) == OpenClStatus.Success;
}

/// <summary>A <c>cl_program</c>.</summary>
internal sealed class ProgramHandle : OpenClHandle
{
    protected override bool ReleaseHandle() => OpenClNative.clReleaseProgram(handle) == OpenClStatus.Success;
}

/// <summary>A <c>cl_kernel</c>.</summary>
internal sealed class KernelHandle : OpenClHandle
{
    protected override bool ReleaseHandle() => OpenClNative.clReleaseKernel(handle) == OpenClStatus.Success;
}

/// <summary>A <c>cl_event</c>.</summary>
internal sealed class EventHandle : OpenClHandle
{
    /// <summary>Takes ownership of an event an enqueue call wrote out.</summary>
    public static EventHandle Own(IntPtr completion)
    {
        var owned = new EventHandle();
        owned.SetHandle(completion);
        return owned;
    }

    protected override bool ReleaseHandle() => OpenClNative.clReleaseEvent(handle) == OpenClStatus.Success;
}

/// <summary>
/// A <c>cl_mem</c> the backend keeps for itself (uploaded starts, the bounds flag). Unlike <c>OpenClBuffer</c>
/// it is not counted in <see cref="Backend.LiveBuffers"/>: those count what tensors own, and a backend's scratch
/// must not read as a leak in a test that checks a disposed tensor left nothing behind.
/// </summary>
internal sealed class MemHandle : OpenClHandle
{
    public MemHandle(IntPtr memory, long bytes)
    {
        SetHandle(memory);
        ByteCount = bytes;
    }

    public long ByteCount { get; }

    protected override bool ReleaseHandle() => OpenClNative.clReleaseMemObject(handle) == OpenClStatus.Success;
}
