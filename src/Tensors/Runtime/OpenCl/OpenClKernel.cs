using NativeTensor.Runtime.Kernels;

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
    /// Sets <paramref name="arguments"/> in order and enqueues a 2-D range of <paramref name="shape"/>'s groups of its
    /// threads x 1. Every buffer argument is leased from before its <c>clSetKernelArg</c> until the enqueue has returned
    /// (the command then holds its own reference), so a tensor disposed on another thread meanwhile cannot have its
    /// <c>cl_mem</c> freed under the launch.
    /// </summary>
    public void Launch(QueueHandle queue, in LaunchShape shape, ReadOnlySpan<KernelArgument> arguments)
    {
        if (arguments.Length > MaxArguments) throw new ArgumentOutOfRangeException(nameof(arguments), arguments.Length, $"at most {MaxArguments} kernel arguments");
        nuint* global = stackalloc nuint[] { checked((nuint)(shape.GroupsX * shape.GroupThreads)), (nuint)shape.GroupsY };
        nuint* size = stackalloc nuint[] { (nuint)shape.GroupThreads, 1 };
        Span<bool> held = stackalloc bool[arguments.Length];
        try
        {
            for (int i = 0; i < arguments.Length; i++) arguments[i].Buffer?.DangerousAddRef(ref held[i]);
            lock (_gate)
            {
                // Messages are formatted only on failure: this runs for every batch, and a string per call adds up.
                for (int i = 0; i < arguments.Length; i++)
                    if (Set(arguments[i], (uint)i) is var set and not OpenClStatus.Success)
                        OpenClStatus.Check(set, $"clSetKernelArg({_name}, {i})");
                if (OpenClNative.clEnqueueNDRangeKernel(queue, _handle, 2, null, global, size, 0, null, null) is var queued and not OpenClStatus.Success)
                    OpenClStatus.Check(queued, $"clEnqueueNDRangeKernel({_name}, {shape})");
            }
        }
        finally
        {
            for (int i = 0; i < arguments.Length; i++)
                if (held[i]) arguments[i].Buffer!.DangerousRelease();
        }
    }

    /// <summary>Calls <c>clSetKernelArg</c> with a buffer's <c>cl_mem</c> or a scalar of its C size; the caller holds a reference on the buffer.</summary>
    private int Set(in KernelArgument argument, uint index)
    {
        if (argument.Buffer is { } buffer)
        {
            IntPtr memory = buffer.DangerousGetHandle();
            return OpenClNative.clSetKernelArg(_handle, index, (nuint)IntPtr.Size, &memory);
        }
        long wide = argument.Value;
        int narrow = (int)argument.Value;
        return OpenClNative.clSetKernelArg(_handle, index, (nuint)argument.Size, argument.Size == sizeof(long) ? &wide : &narrow);
    }

    /// <summary>Each parameter's name and type name as the source spells them; the program must be built with <c>-cl-kernel-arg-info</c>.</summary>
    public IReadOnlyList<(string Name, string Type)> Parameters()
    {
        uint count;
        OpenClStatus.Check(OpenClNative.clGetKernelInfo(_handle, OpenClNative.KernelNumArgs, sizeof(uint), &count, null), $"clGetKernelInfo({_name}, NUM_ARGS)");
        var parameters = new (string, string)[count];
        for (uint i = 0; i < count; i++) parameters[i] = (Text(i, OpenClNative.KernelArgName), Text(i, OpenClNative.KernelArgTypeName));
        return parameters;
    }

    private string Text(uint index, uint param)
    {
        nuint size;
        OpenClStatus.Check(OpenClNative.clGetKernelArgInfo(_handle, index, param, 0, null, &size), $"clGetKernelArgInfo({_name}, {index})");
        var bytes = new byte[(int)size];
        fixed (byte* b = bytes) OpenClStatus.Check(OpenClNative.clGetKernelArgInfo(_handle, index, param, size, b, null), $"clGetKernelArgInfo({_name}, {index})");
        return System.Text.Encoding.ASCII.GetString(bytes).TrimEnd('\0');
    }

    public void Dispose() => _handle.Dispose();
}
