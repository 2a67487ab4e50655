using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace NativeTensor.Runtime.Cuda;

/// <summary>
/// Choosing an NVRTC the driver can follow, and building CUDA C++ source with it into a module image. The image is
/// CUBIN for the device's own <c>sm_XY</c> whenever NVRTC knows that architecture, so the driver loads it without a
/// JIT step; a device newer than the NVRTC at hand gets PTX for the newest <c>compute_XY</c> NVRTC knows below it,
/// which the driver JIT-compiles once per process (PTX of an older virtual architecture runs on every newer GPU).
/// </summary>
internal sealed unsafe partial class Nvrtc
{
    /// <summary>Every NVRTC loaded so far, by location; a library that failed to load is never kept.</summary>
    private static readonly ConcurrentDictionary<string, Nvrtc> Loaded = new(StringComparer.Ordinal);

    /// <summary>What NVRTC should produce for one device: the <c>--gpu-architecture</c> value and whether it is CUBIN.</summary>
    public sealed record Target(string Architecture, bool IsCubin)
    {
        /// <summary>
        /// The options every kernel of this project is built with; they enter the kernel cache key. Three float options
        /// restate NVRTC's defaults so that no toolkit's change of default can break the bit-exact tests: subnormals kept
        /// (<c>--ftz=false</c>), IEEE division and square root. The fourth departs from them: <c>--fmad=false</c> stops
        /// NVRTC contracting a separate multiply and add into one FMA, as FP_CONTRACT OFF does in dialect.h's OpenCL
        /// half, so plain arithmetic rounds as the source shows on every backend (the hot loops use FMA and the _rn
        /// intrinsics explicitly, which the option leaves alone).
        /// </summary>
        public string[] Options { get; } =
        [
            $"--gpu-architecture={Architecture}", "-default-device", "--std=c++17",
            "--ftz=false", "--prec-div=true", "--prec-sqrt=true", "--fmad=false",
        ];

        /// <summary>The options as one line, for cache keys and messages.</summary>
        public string OptionLine => string.Join(' ', Options);
    }

    /// <summary>
    /// The NVRTC to build for a device of compute capability <paramref name="capability"/> (major * 10 + minor) under a
    /// driver of <paramref name="driverVersion"/> (<c>cuDriverGetVersion</c>'s 1000 * major + 10 * minor), and the
    /// target it builds. The driver loads CUBIN of any NVRTC of its own major version or older, but not a newer
    /// major's, and JIT-compiles only PTX no newer than itself; so the first location of <paramref name="search"/>
    /// (newest major first) whose NVRTC satisfies both rules wins. A major named in a file name that is newer than the
    /// driver is not even loaded.
    /// </summary>
    /// <exception cref="NativeTensorException">
    /// No NVRTC fits: the message lists what was found and why each was passed over, or where it was looked for.
    /// </exception>
    public static (Nvrtc Compiler, Target Target) Select(int driverVersion, int capability, LibrarySearch search)
    {
        var driver = (Major: driverVersion / 1000, Minor: driverVersion % 1000 / 10);
        var passedOver = new List<string>();
        foreach (string location in search.Locations())
        {
            if (MajorInName(location) is int named && named > driver.Major)
            {
                passedOver.Add($"{location} is NVRTC {named}, newer than the driver");
                continue;
            }
            if (TryLoad(location, passedOver) is not Nvrtc nvrtc) continue;
            if (nvrtc.Version.Major > driver.Major)
            {
                passedOver.Add($"{nvrtc} is newer than the driver");
                continue;
            }
            if (nvrtc.TargetFor(capability) is not Target target)
            {
                passedOver.Add($"{nvrtc} builds for {Describe(nvrtc.Architectures)}, nothing at or below sm_{capability}");
                continue;
            }
            if (!target.IsCubin && nvrtc.Version.CompareTo(driver) > 0)
            {
                passedOver.Add($"{nvrtc} would give PTX ({target.Architecture}) newer than the driver can compile");
                continue;
            }
            return (nvrtc, target);
        }
        string driverText = $"the driver's CUDA {driver.Major}.{driver.Minor}";
        if (passedOver.Count == 0)
            throw new NativeTensorException(
                $"cuda: NVRTC, which compiles the CUDA kernels, was not found; looked for {search.Description}. " +
                "Install NVRTC 13 or 12 (the CUDA toolkit, or pip's nvidia-cuda-nvrtc), or point CUDA_PATH at a toolkit");
        throw new NativeTensorException(
            $"cuda: none of the NVRTCs found can build for sm_{capability} under {driverText}: {string.Join("; ", passedOver)}. " +
            $"Install NVRTC {driver.Major} (the CUDA {driver.Major} toolkit, or pip's nvidia-cuda-nvrtc-cu{driver.Major}) or a newer driver");
    }

    /// <summary>The NVRTC at <paramref name="location"/>, loaded once per process; null (and the reason added) when it does not load.</summary>
    private static Nvrtc? TryLoad(string location, List<string> passedOver)
    {
        if (Loaded.TryGetValue(location, out Nvrtc? loaded)) return loaded;
        if (!LibrarySearch.TryLoad(location, out IntPtr handle)) return null;
        try
        {
            return Loaded.GetOrAdd(location, new Nvrtc(handle, location));
        }
        catch (Exception e) when (e is EntryPointNotFoundException or NativeTensorException)
        {
            passedOver.Add($"{location} is unusable: {e.Message}");
            return null;
        }
    }

    /// <summary>The major version a file name states: 13 for <c>libnvrtc.so.13</c> or <c>nvrtc64_130_0.dll</c>; null for <c>libnvrtc.so</c>.</summary>
    internal static int? MajorInName(string location)
    {
        Match match = VersionedName().Match(Path.GetFileName(location));
        if (!match.Success) return null;
        if (match.Groups["so"].Success) return int.Parse(match.Groups["so"].Value);
        return int.Parse(match.Groups["dll"].Value) / 10;
    }

    [GeneratedRegex(@"^(?:libnvrtc\.so\.(?<so>\d+)(?:\.\d+)*|nvrtc64_(?<dll>\d+)_\d+\.dll)$", RegexOptions.CultureInvariant)]
    private static partial Regex VersionedName();

    /// <summary>
    /// The target for a device of compute capability <paramref name="capability"/>: CUBIN for <c>sm_XY</c> when this
    /// NVRTC knows it, else PTX for the newest <c>compute_XY</c> below it; null when it knows nothing that old.
    /// </summary>
    public Target? TargetFor(int capability)
    {
        if (Architectures.Contains(capability)) return new Target($"sm_{capability}", IsCubin: true);
        int older = Architectures.Where(a => a < capability).DefaultIfEmpty(-1).Max();
        return older > 0 ? new Target($"compute_{older}", IsCubin: false) : null;
    }

    /// <summary>
    /// Compiles <paramref name="source"/> to the image <paramref name="target"/> names (CUBIN bytes, or PTX text with its
    /// trailing NUL, as <c>cuModuleLoadData</c> wants either).
    /// </summary>
    /// <exception cref="NativeTensorException">The build failed: the message carries NVRTC's full log.</exception>
    public byte[] Compile(string source, string name, Target target)
    {
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
                Check(_createProgram(&program, src, programName, 0, null, null), "nvrtcCreateProgram");

            int compiled = _compileProgram(program, options.Length, optionPointers);
            if (compiled != Success)
                throw Error(compiled, $"nvrtcCompileProgram({name}, {target.OptionLine}) with {this}", "build log:\n" + Log(program));
            return target.IsCubin ? Cubin(program) : Ptx(program);
        }
        finally
        {
            if (program != IntPtr.Zero) _destroyProgram(&program);
            foreach (GCHandle handle in handles)
                if (handle.IsAllocated) handle.Free();
        }
    }

    private string Log(IntPtr program)
    {
        nuint size = 0;
        Check(_getProgramLogSize(program, &size), "nvrtcGetProgramLogSize");
        if (size <= 1) return "(empty)";
        var log = new byte[(int)size];
        fixed (byte* text = log) Check(_getProgramLog(program, text), "nvrtcGetProgramLog");
        return Encoding.UTF8.GetString(log, 0, log.Length - 1);
    }

    private byte[] Cubin(IntPtr program)
    {
        nuint size = 0;
        Check(_getCubinSize(program, &size), "nvrtcGetCUBINSize");
        if (size == 0) throw new NativeTensorException("nvrtc: nvrtcGetCUBINSize returned 0 bytes for a real sm_ architecture");
        var image = new byte[(int)size];
        fixed (byte* bytes = image) Check(_getCubin(program, bytes), "nvrtcGetCUBIN");
        return image;
    }

    private byte[] Ptx(IntPtr program)
    {
        nuint size = 0;
        Check(_getPtxSize(program, &size), "nvrtcGetPTXSize");
        var image = new byte[(int)size];
        fixed (byte* bytes = image) Check(_getPtx(program, bytes), "nvrtcGetPTX");
        return image;
    }

    private static string Describe(IReadOnlyList<int> architectures) =>
        architectures.Count == 0 ? "no architecture" : $"sm_{architectures.Min()} to sm_{architectures.Max()}";

    private static byte[] Utf8z(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
