namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// The committed fixture files under tests/: the copy the build puts beside the test assembly (so the published tests
/// of the device bundle have them too), else the source tree's, found by walking up from the assembly.
/// </summary>
internal static class Fixtures
{
    /// <summary>The folder tests/<paramref name="relative"/> (e.g. <c>Memory/Fixtures</c>).</summary>
    /// <exception cref="DirectoryNotFoundException">Neither beside the test assembly nor in a source tree above it.</exception>
    public static string Folder(string relative)
    {
        string beside = Path.Combine(AppContext.BaseDirectory, relative);
        if (Directory.Exists(beside)) return beside;
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", relative);
            if (Directory.Exists(candidate) && File.Exists(Path.Combine(dir.FullName, "NativeTensor.sln"))) return candidate;
        }
        throw new DirectoryNotFoundException($"{relative} not found beside {AppContext.BaseDirectory} nor as tests/{relative} above it");
    }
}
