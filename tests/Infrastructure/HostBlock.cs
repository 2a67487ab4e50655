using System.Runtime.InteropServices;

namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// A zeroed native block owned by a SafeHandle, standing in for a file mapping: tests make tensor views of it
/// (<c>Tensor.ViewOfHostMemory</c>) and count how often it is released.
/// </summary>
internal sealed unsafe class HostBlock : SafeHandle
{
    public HostBlock(int bytes) : base(IntPtr.Zero, ownsHandle: true)
    {
        Length = bytes;
        SetHandle((IntPtr)NativeMemory.AllocZeroed((nuint)bytes));
    }

    /// <summary>Bytes in the block.</summary>
    public long Length { get; }

    /// <summary>How many times the block was freed: 1 once the owner and every view are gone.</summary>
    public int Releases;

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>The block's first <paramref name="count"/> floats, in place.</summary>
    public Span<float> Floats(int count) => new((void*)handle, count);

    protected override bool ReleaseHandle()
    {
        Interlocked.Increment(ref Releases);
        NativeMemory.Free((void*)handle);
        return true;
    }
}
