namespace NativeTensor.Tests.Infrastructure;

/// <summary>The committed fixture files under tests/, found from the test assembly by walking up to the source tree.</summary>
internal static class Fixtures
{
    /// <summary>The folder tests/<paramref name="relative"/> (e.g. <c>Memory/Fixtures</c>) of the source tree that built these tests.</summary>
    /// <exception cref="DirectoryNotFoundException">No such folder above the test assembly.</exception>
    public static string Folder(string relative)
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", relative);
            if (Directory.Exists(candidate) && File.Exists(Path.Combine(dir.FullName, "NativeTensor.sln"))) return candidate;
        }
        throw new DirectoryNotFoundException($"tests/{relative} not found above {AppContext.BaseDirectory}");
    }
}
