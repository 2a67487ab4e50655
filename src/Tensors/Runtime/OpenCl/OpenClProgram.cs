using System.Text;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// One built <c>cl_program</c> for one device, and the kernels taken from it (one <c>cl_kernel</c> per entry point,
/// created on first use and kept for the program's life). Programs are cached by the backend, so a source is
/// compiled once per device per process.
/// </summary>
internal sealed unsafe class OpenClProgram : IDisposable
{
    private readonly ProgramHandle _handle;
    private readonly IntPtr _device;
    private readonly Dictionary<string, OpenClKernel> _kernels = new(StringComparer.Ordinal);

    private OpenClProgram(ProgramHandle handle, IntPtr device)
    {
        _handle = handle;
        _device = device;
    }

    /// <summary>Compiles <paramref name="source"/> for <paramref name="device"/>.</summary>
    /// <exception cref="NativeTensorException"><c>CL_BUILD_PROGRAM_FAILURE</c> with the compiler's full log, or another status.</exception>
    public static OpenClProgram Build(ContextHandle context, IntPtr device, string source, string options)
    {
        byte[] text = Encoding.UTF8.GetBytes(source);
        byte[] flags = NullTerminated(options);
        int status;
        ProgramHandle handle;
        fixed (byte* t = text)
        {
            byte* strings = t;
            nuint length = (nuint)text.Length;
            handle = OpenClNative.clCreateProgramWithSource(context, 1, &strings, &length, &status);
        }
        try
        {
            handle.CheckCreated(status, "clCreateProgramWithSource");
            fixed (byte* f = flags)
                status = OpenClNative.clBuildProgram(handle, 1, &device, f, IntPtr.Zero, IntPtr.Zero);
            if (status != OpenClStatus.Success)
            {
                // The log is the whole point of the failure: compilers put every diagnostic there, not in the status.
                string log = BuildLog(handle, device);
                throw OpenClStatus.Error(status, "clBuildProgram",
                    $"options '{options}'; build log:{Environment.NewLine}{(log.Length == 0 ? "(empty)" : log)}");
            }
            return new OpenClProgram(handle, device);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The kernel <paramref name="name"/>, created once and then shared by every launch.</summary>
    /// <exception cref="NativeTensorException">No such kernel (<c>CL_INVALID_KERNEL_NAME</c>).</exception>
    public OpenClKernel Kernel(string name)
    {
        lock (_kernels)
        {
            if (!_kernels.TryGetValue(name, out OpenClKernel? kernel))
            {
                kernel = OpenClKernel.Create(_handle, _device, name);
                _kernels.Add(name, kernel);
            }
            return kernel;
        }
    }

    /// <summary>The entry points the program holds, as the compiler found them in the source.</summary>
    public IReadOnlyList<string> KernelNames()
    {
        nuint size;
        OpenClStatus.Check(OpenClNative.clGetProgramInfo(_handle, OpenClNative.ProgramKernelNames, 0, null, &size), "clGetProgramInfo(KERNEL_NAMES)");
        var bytes = new byte[(int)size];
        fixed (byte* b = bytes) OpenClStatus.Check(OpenClNative.clGetProgramInfo(_handle, OpenClNative.ProgramKernelNames, size, b, null), "clGetProgramInfo(KERNEL_NAMES)");
        return System.Text.Encoding.ASCII.GetString(bytes).TrimEnd('\0').Split(';', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Releases the kernels, then the program (a kernel holds a reference on its program, so order only tidies).</summary>
    public void Dispose()
    {
        lock (_kernels)
        {
            foreach (OpenClKernel kernel in _kernels.Values) kernel.Dispose();
            _kernels.Clear();
        }
        _handle.Dispose();
    }

    private static string BuildLog(ProgramHandle program, IntPtr device)
    {
        nuint size;
        if (OpenClNative.clGetProgramBuildInfo(program, device, OpenClNative.ProgramBuildLog, 0, null, &size) != OpenClStatus.Success || size == 0)
            return "";
        var log = new byte[(int)size];
        fixed (byte* l = log)
            if (OpenClNative.clGetProgramBuildInfo(program, device, OpenClNative.ProgramBuildLog, size, l, null) != OpenClStatus.Success)
                return "";
        return Encoding.UTF8.GetString(log).TrimEnd('\0', '\n', '\r', ' ');
    }

    internal static byte[] NullTerminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
