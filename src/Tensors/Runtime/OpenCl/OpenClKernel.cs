using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// One <c>cl_kernel</c> shared by every launch of its entry point. <c>clSetKernelArg</c> is the one OpenCL call that
/// is not thread-safe on a single object (OpenCL 1.2, appendix A.2), and the arguments must stay put until the
/// enqueue captures them, so setting them and enqueueing happen under one lock per kernel. Both calls only queue
/// work, so the lock is held for microseconds; a <c>cl_kernel</c> created per launch would cost more than that on
/// every launch (and on some drivers a trip into the compiler's metadata), contended or not.
/// </summary>
internal sealed unsafe class OpenClKernel : IDisposable
{
    private const int MaxArguments = 16;

    private readonly KernelHandle _handle;
    private readonly string _name;
    private readonly object _gate = new();

    private OpenClKernel(KernelHandle handle, string name, long maxGroupSize, long groupMultiple)
    {
        _handle = handle;
        _name = name;
        MaxGroupSize = maxGroupSize;
        GroupMultiple = groupMultiple;
    }

    /// <summary>The largest group this kernel can launch with on its device (<c>CL_KERNEL_WORK_GROUP_SIZE</c>), which can be below the device's maximum.</summary>
    public long MaxGroupSize { get; }

    /// <summary>
    /// <c>CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE</c>: the warp or wavefront on a GPU (32, 64), the vector width
    /// PoCL packs work-items into on a CPU (8). Groups smaller than this leave lanes idle.
    /// </summary>
    public long GroupMultiple { get; }

    public static OpenClKernel Create(ProgramHandle program, IntPtr device, string name)
    {
        int status;
        KernelHandle handle;
        fixed (byte* n = OpenClProgram.NullTerminated(name))
            handle = OpenClNative.clCreateKernel(program, n, &status);
        try
        {
            handle.CheckCreated(status, $"clCreateKernel({name})");
            nuint groupSize, multiple;
            OpenClStatus.Check(
                OpenClNative.clGetKernelWorkGroupInfo(handle, device, OpenClNative.KernelWorkGroupSize, (nuint)sizeof(nuint), &groupSize, null),
                $"clGetKernelWorkGroupInfo({name})");
            OpenClStatus.Check(
                OpenClNative.clGetKernelWorkGroupInfo(handle, device, OpenClNative.KernelPreferredWorkGroupSizeMultiple, (nuint)sizeof(nuint), &multiple, null),
                $"clGetKernelWorkGroupInfo({name})");
            return new OpenClKernel(handle, name, (long)groupSize, Math.Max(1, (long)multiple));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sets <paramref name="arguments"/> in order and enqueues a 2-D range of <paramref name="groups"/> groups of
    /// <paramref name="local"/> x 1 threads. Every buffer argument is leased from before its <c>clSetKernelArg</c>
    /// until the enqueue has returned (the command then holds its own reference), so a tensor disposed on another
    /// thread meanwhile cannot have its <c>cl_mem</c> freed under the launch.
    /// </summary>
    public void Launch(QueueHandle queue, (long X, long Y) groups, long local, params ReadOnlySpan<KernelArgument> arguments)
    {
        if (arguments.Length > MaxArguments) throw new ArgumentOutOfRangeException(nameof(arguments), arguments.Length, $"at most {MaxArguments} kernel arguments");
        nuint* global = stackalloc nuint[] { checked((nuint)(groups.X * local)), (nuint)groups.Y };
        nuint* size = stackalloc nuint[] { (nuint)local, 1 };
        Span<bool> held = stackalloc bool[arguments.Length];
        try
        {
            for (int i = 0; i < arguments.Length; i++) arguments[i].Buffer?.DangerousAddRef(ref held[i]);
            lock (_gate)
            {
                // Messages are formatted only on failure: this runs for every batch, and a string per call adds up.
                for (int i = 0; i < arguments.Length; i++)
                    if (arguments[i].Set(_handle, (uint)i) is var set and not OpenClStatus.Success)
                        OpenClStatus.Check(set, $"clSetKernelArg({_name}, {i})");
                if (OpenClNative.clEnqueueNDRangeKernel(queue, _handle, 2, null, global, size, 0, null, null) is var queued and not OpenClStatus.Success)
                    OpenClStatus.Check(queued, $"clEnqueueNDRangeKernel({_name})");
            }
        }
        finally
        {
            for (int i = 0; i < arguments.Length; i++)
                if (held[i]) arguments[i].Buffer!.DangerousRelease();
        }
    }

    public void Dispose() => _handle.Dispose();
}

/// <summary>One kernel argument: a buffer (passed as its <c>cl_mem</c>) or a 32- or 64-bit scalar, matching the kernel's <c>int</c> or <c>uint</c> / <c>i64</c>.</summary>
internal readonly unsafe struct KernelArgument
{
    private readonly long _value;
    private readonly int _size;

    private KernelArgument(SafeHandle? buffer, long value, int size)
    {
        Buffer = buffer;
        _value = value;
        _size = size;
    }

    /// <summary>The buffer, or null for a scalar.</summary>
    public SafeHandle? Buffer { get; }

    public static implicit operator KernelArgument(DeviceBuffer buffer) => new(buffer, 0, IntPtr.Size);
    public static implicit operator KernelArgument(MemHandle buffer) => new(buffer, 0, IntPtr.Size);
    public static implicit operator KernelArgument(long value) => new(null, value, sizeof(long));
    public static implicit operator KernelArgument(int value) => new(null, value, sizeof(int));

    // Without this a uint (a float's bits) would bind to the long conversion and be set as 8 bytes: CL_INVALID_ARG_SIZE.
    public static implicit operator KernelArgument(uint value) => new(null, unchecked((int)value), sizeof(uint));

    /// <summary>Calls <c>clSetKernelArg</c>; the caller holds a reference on <see cref="Buffer"/>.</summary>
    public int Set(KernelHandle kernel, uint index)
    {
        if (Buffer is not null)
        {
            IntPtr memory = Buffer.DangerousGetHandle();
            return OpenClNative.clSetKernelArg(kernel, index, (nuint)IntPtr.Size, &memory);
        }
        long wide = _value;
        int narrow = (int)_value;
        return OpenClNative.clSetKernelArg(kernel, index, (nuint)_size, _size == sizeof(long) ? &wide : &narrow);
    }
}
