using System.Reflection;
using System.Runtime.InteropServices;

namespace NativeTensor.Runtime;

/// <summary>
/// Finds the three native libraries by versioned file name, so a machine needs only the runtime packages
/// (<c>libOpenCL.so.1</c>, <c>libcuda.so.1</c>, <c>libnvrtc.so.13</c>/<c>.12</c>), never the <c>-dev</c> symlinks.
/// OpenCL is bound by P/Invoke through the resolver installed here. The CUDA driver and NVRTC are bound from the
/// handle one <see cref="LibrarySearch"/> loads (see <c>CudaDriver</c> and <c>Nvrtc</c>), so every symbol of one
/// library comes from the same file, and a test can point a search at a fake library without touching this process's
/// real one.
/// </summary>
internal static class NativeLibraries
{
    /// <summary>The name the OpenCL P/Invoke declarations use.</summary>
    public const string OpenCl = "OpenCL";

    private static readonly LibrarySearch OpenClSearch =
        new("OpenCL", OperatingSystem.IsWindows() ? ["OpenCL.dll"] : ["libOpenCL.so.1", "libOpenCL.so"], []);

    static NativeLibraries() => NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Installs the resolver (once, in the static constructor); call before the first P/Invoke of any backend.</summary>
    public static void EnsureRegistered() { }

    /// <summary>
    /// The CUDA driver: <c>libcuda.so.1</c> (what the driver package installs) before <c>libcuda.so</c>, which on a
    /// machine with only the toolkit is its link-time library that answers CUDA_ERROR_STUB_LIBRARY; WSL keeps the
    /// real one in <c>/usr/lib/wsl/lib</c>.
    /// </summary>
    public static LibrarySearch CudaDriver { get; } = OperatingSystem.IsWindows()
        ? new("the CUDA driver", ["nvcuda.dll"], [])
        : new("the CUDA driver", ["libcuda.so.1", "libcuda.so"], ["/usr/lib/wsl/lib"]);

    /// <summary>
    /// NVRTC, newest major first. It often sits off the loader path, so it is also looked for under
    /// <c>$CUDA_PATH</c>, <c>$CUDA_HOME</c>, <c>/usr/local/cuda</c> and the <c>nvidia/*/lib</c> folders of Python wheels.
    /// </summary>
    public static LibrarySearch Nvrtc => new("NVRTC",
        OperatingSystem.IsWindows() ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll"] : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
        NvrtcFolders().Distinct().ToArray());

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        name == OpenCl && OpenClSearch.TryLoadFirst(out IntPtr handle, out _) ? handle : IntPtr.Zero;

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

/// <summary>
/// Where to look for one native library: file names in order of preference, each tried on the loader path
/// (LD_LIBRARY_PATH, ldconfig's cache) and then in each extra folder before the next name is tried.
/// </summary>
/// <param name="What">The library in words, for messages ("the CUDA driver").</param>
/// <param name="Names">File names, most preferred first.</param>
/// <param name="Folders">Folders searched after the loader path, in order.</param>
/// <param name="LoaderPath">Whether the loader path is searched at all (a test's search of its own folder is not).</param>
internal sealed record LibrarySearch(string What, IReadOnlyList<string> Names, IReadOnlyList<string> Folders, bool LoaderPath = true)
{
    /// <summary>
    /// Each place a library may be, in the order they are tried: the most preferred name everywhere (the loader path,
    /// then each folder) before the next name, so a preferred name in a folder beats a lesser one on the loader path
    /// (WSL's libcuda.so.1 beats a toolkit's link-time libcuda.so on LD_LIBRARY_PATH; NVRTC 13 in a toolkit beats NVRTC 12 on
    /// the loader path, where the driver can load it).
    /// </summary>
    public IEnumerable<string> Locations()
    {
        foreach (string name in Names)
        {
            if (LoaderPath) yield return name;
            foreach (string folder in Folders) yield return Path.Combine(folder, name);
        }
    }

    /// <summary>Loads <paramref name="location"/> (a bare name goes to the loader, a path must exist); false when it does not load.</summary>
    public static bool TryLoad(string location, out IntPtr handle)
    {
        handle = IntPtr.Zero;
        if (Path.IsPathRooted(location) && !File.Exists(location)) return false;
        return NativeLibrary.TryLoad(location, out handle);
    }

    /// <summary>The first location that loads; false when none does.</summary>
    public bool TryLoadFirst(out IntPtr handle, out string location)
    {
        foreach (string candidate in Locations())
            if (TryLoad(candidate, out handle))
            {
                location = candidate;
                return true;
            }
        handle = IntPtr.Zero;
        location = "";
        return false;
    }

    /// <summary>Where this search looks, in words: the file names tried, then the extra folders.</summary>
    public string Description
    {
        get
        {
            var places = new List<string>();
            if (LoaderPath) places.Add("on the loader path (LD_LIBRARY_PATH, ldconfig)");
            if (Folders.Count > 0) places.Add("in " + string.Join(", ", Folders));
            return $"{string.Join(", ", Names)} {string.Join(" and ", places)}";
        }
    }
}
