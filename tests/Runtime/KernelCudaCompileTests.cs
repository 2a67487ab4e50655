using System.Text.RegularExpressions;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Kernels;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// Every kernel source compiles as CUDA C on a machine without a GPU or a CUDA toolkit: clang's CUDA front end (clang-15,
/// which PoCL's install brings) builds each one to PTX for sm_80, and for sm_90 where that clang knows it, with
/// <c>KernelCompile/clang_cuda_prelude.h</c> standing in for what NVRTC declares. The PTX must define exactly the
/// kernels the OpenCL reading of the same file defines, and no kernel may use local memory (a spilled or unpromoted
/// array), the cheapest sign of a register budget blown under <c>__launch_bounds__</c>. The CUDA-only sources under
/// <c>kernels/cuda/</c> have no OpenCL reading: their PTX must define exactly the kernels
/// <see cref="KernelBackend.CudaOnlyDeclarations"/> declares for them, each with the declared parameters' widths.
/// </summary>
public sealed partial class KernelCudaCompileTests
{
    /// <summary>NATIVETENSOR_REQUIRE's word for these tests.</summary>
    private const string Requirement = "clang-cuda";

    private static readonly Lazy<string?> Clang = new(FindClang);

    /// <summary>The newest clang on PATH with a CUDA front end, or null; it also builds host C++ (the warp emulation).</summary>
    internal static string? ClangPath => Clang.Value;
    private static readonly Lazy<string[]> Architectures = new(() => new[] { "sm_80", "sm_90" }.Where(Knows).ToArray());

    public static TheoryData<string> Files() => Sources(".cl");

    public static TheoryData<string> CudaOnlyFiles() => Sources(".cu");

    /// <summary>The embedded kernel sources whose names end in <paramref name="extension"/>, relative to <c>kernels/</c>.</summary>
    private static TheoryData<string> Sources(string extension)
    {
        var files = new TheoryData<string>();
        foreach (string resource in typeof(KernelSources).Assembly.GetManifestResourceNames().Order(StringComparer.Ordinal))
            if (resource.StartsWith("kernels/", StringComparison.Ordinal) && resource.EndsWith(extension, StringComparison.Ordinal))
                files.Add(resource["kernels/".Length..]);
        return files;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Every_kernel_compiles_as_CUDA_C_and_defines_the_kernels_its_OpenCL_reading_defines(string file)
    {
        string clang = Clang.Value ?? throw Backends.Missing(Requirement, "no clang with a CUDA front end on PATH (clang-15 comes with pocl-opencl-icd)");
        Assert.Contains("sm_80", Architectures.Value);
        string folder = Directory.CreateTempSubdirectory("nativetensor-clang-cuda-").FullName;
        try
        {
            string source = Path.Combine(folder, Path.GetFileName(file));
            File.WriteAllText(source, KernelSources.Get(file));
            SortedSet<string> openCl = OpenClKernels(clang, source);
            Assert.NotEmpty(openCl);
            string prelude = Path.Combine(AppContext.BaseDirectory, "Runtime", "KernelCompile", "clang_cuda_prelude.h");
            foreach (string architecture in Architectures.Value)
            {
                string ptx = Path.Combine(folder, $"{architecture}.ptx");
                Run(clang, "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib", $"--cuda-gpu-arch={architecture}", "-O3",
                    "-Wall", "-Werror", "-include", prelude, "-S", "-o", ptx, source);
                string text = File.ReadAllText(ptx);
                Assert.Equal(openCl, new SortedSet<string>(Entry().Matches(text).Select(m => m.Groups["name"].Value), StringComparer.Ordinal));
                Assert.DoesNotContain("__local_depot", text);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(CudaOnlyFiles))]
    public void Every_CUDA_only_kernel_compiles_and_defines_exactly_its_declared_kernels_and_parameters(string file)
    {
        string clang = Clang.Value ?? throw Backends.Missing(Requirement, "no clang with a CUDA front end on PATH (clang-15 comes with pocl-opencl-icd)");
        Assert.Contains("sm_80", Architectures.Value);
        Dictionary<string, DeviceKernel> declared = KernelBackend.CudaOnlyDeclarations.Where(k => k.Source == file).ToDictionary(k => k.Entry);
        Assert.NotEmpty(declared);
        string folder = Directory.CreateTempSubdirectory("nativetensor-clang-cuda-").FullName;
        try
        {
            string source = Path.Combine(folder, Path.GetFileName(file));
            File.WriteAllText(source, KernelSources.Get(file));
            string prelude = Path.Combine(AppContext.BaseDirectory, "Runtime", "KernelCompile", "clang_cuda_prelude.h");
            foreach (string architecture in Architectures.Value)
            {
                string ptx = Path.Combine(folder, $"{architecture}.ptx");
                Run(clang, "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib", $"--cuda-gpu-arch={architecture}", "-O3",
                    "-Wall", "-Werror", "-include", prelude, "-S", "-o", ptx, source);
                string text = File.ReadAllText(ptx);
                Dictionary<string, string[]> compiled = EntryWithParameters().Matches(text).ToDictionary(
                    m => m.Groups["name"].Value, m => m.Groups["type"].Captures.Select(c => c.Value).ToArray());
                Assert.Equal(declared.Keys.Order(StringComparer.Ordinal), compiled.Keys.Order(StringComparer.Ordinal));
                foreach ((string entry, string[] types) in compiled)
                    Assert.True(types.SequenceEqual(declared[entry].Parameters.Select(p => Width(p.Kind))),
                        $"{entry} ({architecture}): the PTX takes ({string.Join(", ", types)}), the declaration ({string.Join(", ", declared[entry].Parameters)})");
                Assert.DoesNotContain("__local_depot", text);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void CUDA_only_kernels_are_not_among_the_declarations_OpenCL_and_ILGPU_build()
    {
        Assert.All(KernelBackend.CudaOnlyDeclarations, k => Assert.StartsWith("cuda/", k.Source, StringComparison.Ordinal));
        Assert.DoesNotContain(KernelBackend.Declarations, k => k.Source.StartsWith("cuda/", StringComparison.Ordinal));
    }

    /// <summary>How clang's PTX declares a kernel parameter of <paramref name="kind"/>.</summary>
    private static string Width(ParameterKind kind) => kind is ParameterKind.Int32 or ParameterKind.UInt32 ? "u32" : "u64";

    /// <summary>The kernels the OpenCL C reading of <paramref name="source"/> defines, from clang's preprocessor in OpenCL mode.</summary>
    private static SortedSet<string> OpenClKernels(string clang, string source)
    {
        // clang leaves __OPENCL_VERSION__ to the OpenCL implementation (PoCL defines it), so it is set here as PoCL sets it.
        string expanded = Run(clang, "-x", "cl", "-cl-std=CL1.2", "-D__OPENCL_VERSION__=120", "-E", "-P", source);
        return new SortedSet<string>(OpenClKernel().Matches(expanded).Select(m => m.Groups["name"].Value), StringComparer.Ordinal);
    }

    [GeneratedRegex(@"^\.visible \.entry (?<name>\w+)\(", RegexOptions.Multiline)]
    private static partial Regex Entry();

    /// <summary>A kernel in clang's PTX with the type of each <c>.param</c>, e.g. <c>.param .u64 name_param_0,</c>.</summary>
    [GeneratedRegex(@"^\.visible \.entry (?<name>\w+)\(\s*(?:\.param \.(?<type>\w+) \w+,?\s*)*\)", RegexOptions.Multiline)]
    private static partial Regex EntryWithParameters();

    [GeneratedRegex(@"__kernel\s+(?:__attribute__\(\(.*?\)\)\s+)*void\s+(?<name>\w+)\s*\(", RegexOptions.Singleline)]
    private static partial Regex OpenClKernel();

    private static string Run(string program, params string[] arguments) => ChildProcess.Check(program, arguments);

    /// <summary>Whether the clang at hand knows <paramref name="architecture"/> (clang-15 stops at sm_87; sm_90 came with clang 16).</summary>
    private static bool Knows(string architecture) => Clang.Value is not null && ChildProcess.Run(Clang.Value,
        ["-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib", $"--cuda-gpu-arch={architecture}", "-fsyntax-only", "-"], input: "").Exit == 0;

    /// <summary>The newest clang on PATH that has the CUDA front end, newest first.</summary>
    private static string? FindClang()
    {
        string[] folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        foreach (string name in new[] { "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang" })
            foreach (string folder in folders)
            {
                string path = Path.Combine(folder, name);
                if (File.Exists(path)) return path;
            }
        return null;
    }
}
