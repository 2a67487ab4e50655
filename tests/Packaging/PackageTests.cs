using System.IO.Compression;
using System.Text;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Packaging;

/// <summary>
/// What a new user does: packs the three libraries (<c>dotnet pack -c Release</c>), makes a fresh console project,
/// adds the packages from a local folder feed (<c>dotnet add package</c>), and runs a gather, a conversion, a memory
/// budget and a loss scaler from them. The restore sees only that folder and a packages cache of its own, so it can
/// neither fetch an older NativeTensor from elsewhere nor reuse one cached by an earlier run.
/// </summary>
public sealed class PackageTests
{
    private const string Requirement = "dotnet-sdk";
    private static readonly string[] Libraries = ["src/Tensors/NativeTensor.csproj", "src/Memory/NativeTensor.Memory.csproj", "src/Training/NativeTensor.Training.csproj"];

    /// <summary>For a dotnet build started by a test: quiet, and without the test host's own MSBuild settings, which would leak into it.</summary>
    internal static readonly IReadOnlyDictionary<string, string?> ChildBuildEnvironment = new Dictionary<string, string?>
    {
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_NOLOGO"] = "1",
        ["MSBuildExtensionsPath"] = null,
        ["MSBUILD_EXE_PATH"] = null,
        ["MSBuildSDKsPath"] = null,
    };

    [Fact]
    public void A_fresh_console_project_adds_the_packages_from_a_folder_and_runs_them()
    {
        string root = RepositoryRoot() ?? throw Backends.Missing(Requirement, "not run from a clone of the repository (the device bundle has no sources to pack)");
        string dotnet = Sdk() ?? throw Backends.Missing(Requirement, "no .NET SDK here to pack and build with");
        string work = Directory.CreateTempSubdirectory("nativetensor-packages-").FullName;
        try
        {
            string feed = Path.Combine(work, "feed");
            var environment = new Dictionary<string, string?>(ChildBuildEnvironment) { ["NUGET_PACKAGES"] = Path.Combine(work, "packages") };
            foreach (string project in Libraries)
                Run(dotnet, root, environment, "pack", Path.Combine(root, project), "-c", "Release", "-o", feed);
            string version = CheckPackages(feed);

            string app = Path.Combine(work, "app");
            Run(dotnet, work, environment, "new", "console", "-o", app, "--framework", "net10.0");
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            foreach (string package in new[] { "NativeTensor", "NativeTensor.Memory", "NativeTensor.Training" })
                Run(dotnet, app, environment, "add", "package", package, "--version", version);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using NativeTensor;
                using NativeTensor.Memory;
                using NativeTensor.Training;

                float[] data = Enumerable.Range(0, 50 * 3).Select(i => (float)i).ToArray();
                using Tensor frames = Tensor.FromArray(data, 50, 3);
                using Tensor batch = Windows.Gather(frames, new long[] { 0, 10, 40 }, window: 3);   // [3, 3, 3]
                using Tensor compact = Precision.Convert(batch, DType.BFloat16);
                using Tensor wide = Precision.Convert(compact, DType.Float32);
                float[] values = wide.ToArray<float>();
                Console.WriteLine($"gathered {string.Join(' ', batch.Shape)}: {string.Join(',', values)}");
                Console.WriteLine($"budget positive: {MemoryBudget.Current().TotalBytes > 0}");
                Console.WriteLine($"loss scale: {new DynamicLossScaler().Scale}");
                """);
            string output = Run(dotnet, app, environment, "run", "-c", "Release");

            // Rows of three consecutive integers, all below 256, so the BFloat16 round trip is exact.
            IEnumerable<int> expected = new[] { 0, 10, 40 }.SelectMany(start => Enumerable.Range(start * 3, 9));
            Assert.Contains($"gathered 3 3 3: {string.Join(',', expected)}", output);
            Assert.Contains("budget positive: True", output);
            Assert.Contains("loss scale: 65536", output);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Checks each package holds its library, XML docs, README and licence; returns their common version.</summary>
    private static string CheckPackages(string feed)
    {
        string[] packages = Directory.GetFiles(feed, "*.nupkg");
        Assert.Equal(3, packages.Length);
        var versions = new HashSet<string>();
        foreach (string package in packages)
        {
            using ZipArchive zip = ZipFile.OpenRead(package);
            string id = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Name[..^".nuspec".Length];
            string[] names = zip.Entries.Select(e => e.FullName).ToArray();
            Assert.Contains($"lib/net10.0/{id}.dll", names);
            Assert.Contains($"lib/net10.0/{id}.xml", names);
            Assert.Contains("README.md", names);
            Assert.Contains("LICENSE", names);
            string nuspec = Read(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)));
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec);
            if (id != "NativeTensor") Assert.Contains("<dependency id=\"NativeTensor\"", nuspec);
            else Assert.Contains("kernels/windows.cl", Read(zip.GetEntry("lib/net10.0/NativeTensor.dll")!, Encoding.Latin1));
            versions.Add(Path.GetFileNameWithoutExtension(package)[(id.Length + 1)..]);
        }
        return Assert.Single(versions);
    }

    private static string Read(ZipArchiveEntry entry, Encoding? encoding = null)
    {
        using var reader = new StreamReader(entry.Open(), encoding ?? Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private static string Run(string dotnet, string folder, Dictionary<string, string?> environment, params string[] arguments) =>
        ChildProcess.Check(dotnet, arguments, folder, environment, minutes: 5);

    private static string? RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "NativeTensor.sln"))) return folder.FullName;
        return null;
    }

    /// <summary>The dotnet that runs these tests when it is an SDK (DOTNET_HOST_PATH), else the first on PATH that has one.</summary>
    internal static string? Sdk()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host) candidates.Add(host);
        foreach (string folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            candidates.Add(Path.Combine(folder, "dotnet"));
        foreach (string dotnet in candidates.Where(File.Exists))
        {
            string real = new FileInfo(dotnet).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(dotnet);
            if (Directory.Exists(Path.Combine(Path.GetDirectoryName(real)!, "sdk"))) return real;
        }
        return null;
    }
}
