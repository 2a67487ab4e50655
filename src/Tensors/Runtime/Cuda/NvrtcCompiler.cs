using System.Runtime.InteropServices;
using System.Text;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// Builds CUDA C++ source into a module image with NVRTC. The image is CUBIN for the device's own <c>sm_XY</c>
/// whenever NVRTC knows that architecture, so the driver loads it without a JIT step; a device newer than the
/// NVRTC at hand gets PTX for the newest <c>compute_XY</c> NVRTC knows below it, which the driver JIT-compiles
/// once per process (PTX of an older virtual architecture runs on every newer GPU).
/// </summary>
internal static unsafe class NvrtcCompiler
{
    private static readonly Lazy<(int Major, int Minor, int[] Architectures)> Library = new(Load);

    /// <summary>What NVRTC should produce for one device: the <c>--gpu-architecture</c> value and whether it is CUBIN.</summary>
    public sealed record Target(string Architecture, bool IsCubin)
    {
        /// <summary>The options every kernel of this project is built with; they enter the kernel cache key.</summary>
        public string[] Options { get; } = [$"--gpu-architecture={Architecture}", "-default-device", "--std=c++17"];

        /// <summary>The options as one line, for cache keys and messages.</summary>
        public string OptionLine => string.Join(' ', Options);
    }

    /// <summary>The NVRTC version, e.g. (12, 6); loads the library on first use.</summary>
    /// <exception cref="NativeTensorException">NVRTC is not installed: the message lists the names and folders searched.</exception>
    public static (int Major, int Minor) Version => (Library.Value.Major, Library.Value.Minor);

    /// <summary>The target for a device of compute capability <paramref name="capability"/> (major * 10 + minor, e.g. 90).</summary>
    /// <exception cref="NativeTensorException">NVRTC is missing, or is too new to know any architecture this old.</exception>
    public static Target TargetFor(int capability)
    {
        int[] known = Library.Value.Architectures;
        if (Array.IndexOf(known, capability) >= 0) return new Target($"sm_{capability}", IsCubin: true);
        int older = known.Where(a => a < capability).DefaultIfEmpty(-1).Max();
        if (older > 0) return new Target($"compute_{older}", IsCubin: false);
        throw new NativeTensorException(
            $"nvrtc {Version.Major}.{Version.Minor} cannot build for sm_{capability}: it supports {Describe(known)}; " +
            "an NVRTC from an older CUDA toolkit still supports this GPU");
    }

    /// <summary>
    /// Compiles <paramref name="source"/> to the image <paramref name="target"/> names (CUBIN bytes, or PTX text with its
    /// trailing NUL, as <c>cuModuleLoadData</c> wants either).
    /// </summary>
    /// <exception cref="NativeTensorException">The build failed: the message carries NVRTC's full log.</exception>
    public static byte[] Compile(string source, string name, Target target)
    {
        _ = Library.Value;
        byte[] sourceText = Utf8z(source);
        byte[] nameText = Utf8z(name);
        byte[][] options = target.Options.Select(Utf8z).ToArray();
        var handles = new GCHandle[options.Length];
        IntPtr program = IntPtr.Zero;
        try
        {
            byte** optionPointers = stackalloc byte*[options.Length];
            for (int i = 0; i < options.Length; i++)
            {
                handles[i] = GCHandle.Alloc(options[i], GCHandleType.Pinned);
                optionPointers[i] = (byte*)handles[i].AddrOfPinnedObject();
            }
            fixed (byte* src = sourceText)
            fixed (byte* programName = nameText)
                CudaStatus.CheckNvrtc(NvrtcNative.nvrtcCreateProgram(out program, src, programName, 0, null, null), "nvrtcCreateProgram");

            int compiled = NvrtcNative.nvrtcCompileProgram(program, options.Length, optionPointers);
            if (compiled != NvrtcNative.Success)
                throw CudaStatus.NvrtcError(compiled, $"nvrtcCompileProgram({name}, {target.OptionLine}) with NVRTC {Version.Major}.{Version.Minor}",
                    "build log:\n" + Log(program));
            return target.IsCubin ? Cubin(program) : Ptx(program);
        }
        finally
        {
            if (program != IntPtr.Zero) NvrtcNative.nvrtcDestroyProgram(ref program);
            foreach (GCHandle handle in handles)
                if (handle.IsAllocated) handle.Free();
        }
    }

    private static string Log(IntPtr program)
    {
        CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetProgramLogSize(program, out nuint size), "nvrtcGetProgramLogSize");
        if (size <= 1) return "(empty)";
        var log = new byte[(int)size];
        fixed (byte* text = log) CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetProgramLog(program, text), "nvrtcGetProgramLog");
        return Encoding.UTF8.GetString(log, 0, log.Length - 1);
    }

    private static byte[] Cubin(IntPtr program)
    {
        CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetCUBINSize(program, out nuint size), "nvrtcGetCUBINSize");
        if (size == 0) throw new NativeTensorException("nvrtc: nvrtcGetCUBINSize returned 0 bytes for a real sm_ architecture");
        var image = new byte[(int)size];
        fixed (byte* bytes = image) CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetCUBIN(program, bytes), "nvrtcGetCUBIN");
        return image;
    }

    private static byte[] Ptx(IntPtr program)
    {
        CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetPTXSize(program, out nuint size), "nvrtcGetPTXSize");
        var image = new byte[(int)size];
        fixed (byte* bytes = image) CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetPTX(program, bytes), "nvrtcGetPTX");
        return image;
    }

    /// <summary>Loads NVRTC (through the resolver) and reads its version and architecture list once per process.</summary>
    private static (int Major, int Minor, int[] Architectures) Load()
    {
        NativeLibraries.EnsureRegistered();
        int major, minor;
        try
        {
            CudaStatus.CheckNvrtc(NvrtcNative.nvrtcVersion(out major, out minor), "nvrtcVersion");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new NativeTensorException(
                $"cuda: NVRTC, which compiles the CUDA kernels, was not found; looked for {NativeLibraries.SearchDescription(NativeLibraries.Nvrtc)}. " +
                "Install NVRTC 13 or 12 (the CUDA toolkit, or pip's nvidia-cuda-nvrtc), or point CUDA_PATH at a toolkit", e);
        }
        CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetNumSupportedArchs(out int count), "nvrtcGetNumSupportedArchs");
        var architectures = new int[count];
        fixed (int* list = architectures)
            if (count > 0) CudaStatus.CheckNvrtc(NvrtcNative.nvrtcGetSupportedArchs(list), "nvrtcGetSupportedArchs");
        return (major, minor, architectures);
    }

    private static string Describe(int[] architectures) =>
        architectures.Length == 0 ? "no architecture" : $"sm_{architectures.Min()} to sm_{architectures.Max()}";

    private static byte[] Utf8z(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
