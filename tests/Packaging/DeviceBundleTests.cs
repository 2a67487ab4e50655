using System.Text.RegularExpressions;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Packaging;

/// <summary>
/// The device bundle (<c>perf/device/bundle.sh</c> and <c>run.sh</c>) stays runnable without building it, which takes
/// about two minutes: both scripts parse, every class pattern run.sh selects still names test classes, and the test
/// executable and perf accept the very arguments run.sh gives them.
/// </summary>
public sealed partial class DeviceBundleTests
{
    private const string Requirement = "dotnet-sdk";
    private static readonly object BuildLock = new();

    [Theory]
    [InlineData("perf/device/bundle.sh")]
    [InlineData("perf/device/run.sh")]
    public void The_scripts_parse(string script)
    {
        string root = Root();
        Run("bash", root, "-n", Path.Combine(root, script));
    }

    [Fact]
    public void Every_class_filter_run_sh_gives_is_valid_and_selects_test_classes()
    {
        string[] patterns = ClassPattern().Matches(File.ReadAllText(Path.Combine(Root(), "perf/device/run.sh"))).Select(m => m.Groups["pattern"].Value)
            .Where(pattern => !pattern.StartsWith('$')).ToArray();   // "$pattern": a caller's own selection (NATIVETENSOR_BUNDLE_TESTS), not run.sh's
        Assert.NotEmpty(patterns);
        string dotnet = Sdk(), assembly = Path.Combine(AppContext.BaseDirectory, "NativeTensor.Tests.dll");
        foreach (string pattern in patterns)
        {
            // The test executable itself judges the filter (xunit takes a wildcard only at either end) and lists what it selects.
            string listed = Run(dotnet, AppContext.BaseDirectory, assembly, "-class", pattern, "-list", "classes");
            Assert.True(listed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Any(line => line.StartsWith("NativeTensor.Tests.", StringComparison.Ordinal)),
                $"run.sh selects -class \"{pattern}\", which names no test class:\n{listed}");
        }
        string cuda = Run(dotnet, AppContext.BaseDirectory, assembly, "-class", patterns[0], "-list", "classes");
        Assert.Contains("NativeTensor.Tests.Runtime.CudaRuntimeTests", cuda);
        Assert.Contains("NativeTensor.Tests.Ops.CudaLinalgParityTests", cuda);
    }

    [Fact]
    public void The_test_executable_takes_run_sh_s_selection_and_report_options()
    {
        string dotnet = Sdk();
        string folder = Directory.CreateTempSubdirectory("nativetensor-bundle-").FullName;
        try
        {
            string xml = Path.Combine(folder, "tests.xml"), junit = Path.Combine(folder, "tests.junit.xml");
            string assembly = Path.Combine(AppContext.BaseDirectory, "NativeTensor.Tests.dll");
            string output = Run(dotnet, folder, assembly, "-class", "NativeTensor.Tests.Runtime.KernelSource*", "-xml", xml, "-junit", junit);
            Assert.Contains("Every_header_is_pasted_once", File.ReadAllText(xml));
            Assert.Contains("<testsuite", File.ReadAllText(junit));
            Assert.DoesNotContain("CudaRuntimeTests", File.ReadAllText(xml));
            Assert.Contains("Total: 5", output);   // KernelSourcesTests: one case per kernel source with an include, attention.cl the fifth
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("validate")]
    [InlineData("all")]
    public void Perf_takes_run_sh_s_commands_and_options(string command)
    {
        string root = Root(), dotnet = Sdk();
        string perf = Path.Combine(root, "perf/bin/Release/net10.0/NativeTensor.Perf.dll");
        // dotnet test builds only the test project and what it references, so on a fresh clone perf is built here.
        lock (BuildLock)
            if (!File.Exists(perf))
                ChildProcess.Check(dotnet, ["build", Path.Combine(root, "perf/NativeTensor.Perf.csproj"), "-c", "Release", "-nologo"], root,
                    PackageTests.ChildBuildEnvironment, minutes: 5);
        // A device that cannot exist: the options parse, and perf stops at the device with exit code 2 before any work.
        (int exit, string output) = Start(dotnet, root, perf, command, "--device", "cuda:99", "--out", Path.Combine(Path.GetTempPath(), "never.md"));
        Assert.Equal(2, exit);
        Assert.Contains("--device cuda:99:", output);
        Assert.DoesNotContain("unknown command", output);
        Assert.DoesNotContain("unknown or incomplete option", output);
    }

    [GeneratedRegex(@"-class ""(?<pattern>[^""]+)""")]
    private static partial Regex ClassPattern();

    private static string Root()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "perf/device/run.sh"))) return folder.FullName;
        throw Backends.Missing(Requirement, "not run from a clone of the repository (the device bundle holds no scripts' sources)");
    }

    private static string Sdk() => PackageTests.Sdk() ?? throw Backends.Missing(Requirement, "no .NET SDK here to run the test assembly and perf with");

    private static string Run(string program, string folder, params string[] arguments) => ChildProcess.Check(program, arguments, folder);

    private static (int Exit, string Output) Start(string program, string folder, params string[] arguments)
    {
        ChildProcess.Result result = ChildProcess.Run(program, arguments, folder);
        return (result.Exit, result.All);
    }
}
