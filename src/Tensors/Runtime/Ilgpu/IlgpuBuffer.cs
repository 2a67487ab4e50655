using ILGPU;
using ILGPU.Runtime;

namespace NativeTensor.Runtime.Ilgpu;

/// <summary>
/// A block of an ILGPU accelerator's memory: a <c>MemoryBuffer1D&lt;byte, Stride1D.Dense&gt;</c> the backend allocated and
/// frees, or a view of memory the caller owns (an ILGPU buffer wrapped by <see cref="NativeTensor.Ilgpu.Wrap{T}(ArrayView{T}, long[])"/>),
/// which is never freed here and is not counted as an allocation. ILGPU hands out no stable pointer on every accelerator,
/// so the handle is a process-unique number: non-zero, so the SafeHandle is valid, and distinct for every buffer.
/// </summary>
internal sealed class IlgpuBuffer : DeviceBuffer
{
    private static long _lastHandle;

    private readonly MemoryBuffer? _owned;

    private IlgpuBuffer(IlgpuBackend owner, MemoryBuffer? owned, ArrayView<byte> view, long byteCount, bool counted)
        : base(owner, (IntPtr)Interlocked.Increment(ref _lastHandle), byteCount, counted)
    {
        _owned = owned;
        View = view;
    }

    /// <summary>The buffer's bytes on the device, from offset 0 (16-byte aligned) for <see cref="DeviceBuffer.ByteCount"/> bytes.</summary>
    public ArrayView<byte> View { get; }

    /// <summary>Whether the memory is the backend's to free (false for a wrapped view of the caller's).</summary>
    public bool OwnsMemory => _owned is not null;

    /// <summary>
    /// Allocates <paramref name="bytes"/> on the backend's accelerator (at least one byte, so an empty tensor still has a
    /// real, distinct buffer). Pass <c>counted: false</c> for the backend's own scratch, which the leak counters do not count.
    /// </summary>
    /// <exception cref="NativeTensorException">The accelerator could not allocate it; the message gives the sizes.</exception>
    public static IlgpuBuffer Allocate(IlgpuBackend owner, long bytes, bool counted = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        MemoryBuffer1D<byte, Stride1D.Dense> memory;
        try
        {
            Accelerator accelerator = owner.Accelerator;
            lock (owner.Gate)
            {
                accelerator.Bind();
                memory = accelerator.Allocate1D<byte>(Math.Max(bytes, 1));
            }
        }
        catch (Exception e) when (e is not NativeTensorException and not ObjectDisposedException)
        {
            throw IlgpuErrors.From(e, owner.Name, $"allocating {bytes:N0} bytes ({owner.DescribeMemory()})");
        }
        return new IlgpuBuffer(owner, memory, memory.View.AsContiguous().SubView(0, bytes), bytes, counted);
    }

    /// <summary>A buffer over <paramref name="view"/>, which the caller keeps owning and must keep alive while the buffer is in use.</summary>
    public static IlgpuBuffer Wrap(IlgpuBackend owner, ArrayView<byte> view) => new(owner, null, view, view.Length, counted: false);

    /// <summary>Frees owned memory; never throws (a finaliser may run it after the accelerator is gone, which freed it already).</summary>
    protected override bool Free(IntPtr handle)
    {
        if (_owned is null) return true;
        try
        {
            lock (((IlgpuBackend)Owner).Gate) _owned.Dispose();
            return true;
        }
        catch (Exception)
        {
            return false;
        }
    }
}
