using System.Reflection;
using System.Runtime.InteropServices;

namespace NativeTensor.Runtime;

/// <summary>
/// Resolves the three native libraries by versioned file name, so a machine needs only the runtime packages
/// (<c>libOpenCL.so.1</c>, <c>libcuda.so.1</c>, <c>libnvrtc.so.13</c>/<c>.12</c>), never the <c>-dev</c> symlinks.
/// NVRTC often sits off the loader path, so it is also looked for under <c>$CUDA_PATH</c>, <c>/usr/local/cuda</c>
/// and the <c>nvidia/*/lib</c> folders of Python wheels.
/// </summary>
internal static class NativeLibraries
{
    /// <summary>The names the P/Invoke declarations use.</summary>
    public const string OpenCl = "OpenCL";
    public const string Cuda = "cuda";
    public const string Nvrtc = "nvrtc";

    private static readonly string[] OpenClNames = OperatingSystem.IsWindows() ? ["OpenCL.dll"] : ["libOpenCL.so.1", "libOpenCL.so"];
    private static readonly string[] CudaNames = OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];
    private static readonly string[] NvrtcNames = OperatingSystem.IsWindows()
        ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll"]
        : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];

    static NativeLibraries() => NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Installs the resolver (once, in the static constructor); call before the first P/Invoke of any backend.</summary>
    public static void EnsureRegistered() { }

    /// <summary>
    /// Where the resolver looks for <paramref name="name"/> (one of the constants above), in words, for the message
    /// of a library that did not load: the file names tried, then the extra folders.
    /// </summary>
    public static string SearchDescription(string name)
    {
        string[] names = name switch { OpenCl => OpenClNames, Cuda => CudaNames, Nvrtc => NvrtcNames, _ => [name] };
        string[] folders = name == Nvrtc ? NvrtcFolders().Distinct().ToArray() : [];
        string where = "on the loader path (LD_LIBRARY_PATH, ldconfig)";
        if (folders.Length > 0) where += " and in " + string.Join(", ", folders);
        return $"{string.Join(", ", names)} {where}";
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) => name switch
    {
        OpenCl => LoadFirst(OpenClNames, []),
        Cuda => LoadFirst(CudaNames, []),
        Nvrtc => LoadFirst(NvrtcNames, NvrtcFolders()),
        _ => IntPtr.Zero,
    };

    /// <summary>Tries each name on the loader path, then in each folder; zero when none loads.</summary>
    private static IntPtr LoadFirst(string[] names, IEnumerable<string> folders)
    {
        foreach (string name in names)
            if (NativeLibrary.TryLoad(name, out IntPtr handle)) return handle;
        foreach (string folder in folders)
            foreach (string name in names)
            {
                string path = Path.Combine(folder, name);
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out IntPtr handle)) return handle;
            }
        return IntPtr.Zero;
    }

    private static IEnumerable<string> NvrtcFolders()
    {
        foreach (string variable in new[] { "CUDA_PATH", "CUDA_HOME" })
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } root)
            {
                yield return Path.Combine(root, "lib64");
                yield return Path.Combine(root, "lib");
            }
        yield return "/usr/local/cuda/lib64";
        yield return "/usr/local/cuda/targets/x86_64-linux/lib";
        // pip's nvidia-cuda-nvrtc wheels: site-packages/nvidia/cuda_nvrtc/lib (CUDA 12) or nvidia/cu13/lib (CUDA 13).
        foreach (string sitePackages in PythonSitePackages())
        {
            string nvidia = Path.Combine(sitePackages, "nvidia");
            if (!Directory.Exists(nvidia)) continue;
            foreach (string package in SafeDirectories(nvidia))
                yield return Path.Combine(package, "lib");
        }
    }

    private static IEnumerable<string> PythonSitePackages()
    {
        foreach (string prefix in new[] { "/usr/local/lib", "/usr/lib", "/opt/conda/lib", Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local/lib") })
            foreach (string python in SafeDirectories(prefix, "python3*"))
            {
                yield return Path.Combine(python, "site-packages");
                yield return Path.Combine(python, "dist-packages");
            }
    }

    private static string[] SafeDirectories(string folder, string pattern = "*")
    {
        try { return Directory.Exists(folder) ? Directory.GetDirectories(folder, pattern) : []; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }
}
