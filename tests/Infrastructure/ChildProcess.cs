using System.Diagnostics;

namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// Runs another program for a test (a C compiler, clang, python, dotnet, the test executable itself) with both of its
/// streams read to the end, so neither can fill its pipe and stall the child, and a time limit that fails the test
/// instead of hanging the run.
/// </summary>
internal static partial class ChildProcess
{
    /// <summary>The child's exit code and what it wrote to each stream.</summary>
    public readonly record struct Result(int Exit, string Output, string Error)
    {
        /// <summary>Both streams, standard output first.</summary>
        public string All => Output + Error;
    }

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> and returns how it ended.</summary>
    /// <param name="folder">The working folder; the test's own when null.</param>
    /// <param name="environment">Variables to set (or, with a null value, remove) for the child.</param>
    /// <param name="input">Text for its standard input, which is closed after it; none when null.</param>
    /// <param name="minutes">The time limit; past it the child is killed and the test fails.</param>
    public static Result Run(string program, IEnumerable<string> arguments, string? folder = null,
        IReadOnlyDictionary<string, string?>? environment = null, string? input = null, double minutes = 3)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
        };
        if (folder is not null) start.WorkingDirectory = folder;
        foreach ((string name, string? value) in environment ?? new Dictionary<string, string?>())
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        using Process process = Process.Start(start)!;
        if (input is not null)
        {
            process.StandardInput.Write(input);
            process.StandardInput.Close();
        }
        Task<string> error = process.StandardError.ReadToEndAsync();
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(minutes)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{Describe(program, arguments)} did not finish in {minutes} minutes");
        }
        return new Result(process.ExitCode, Printable(output.Result), Printable(error.Result));
    }

    /// <summary>
    /// <paramref name="text"/> without terminal colour sequences and other control characters. They reach assertion
    /// messages, and the VSTest adapter drops a test result whose message holds one (an XML-invalid character): the
    /// failing test would vanish from the run, which then reports green.
    /// </summary>
    internal static string Printable(string text) =>
        ControlCharacters().Replace(AnsiSequence().Replace(text, ""), "\uFFFD");

    [System.Text.RegularExpressions.GeneratedRegex(@"\x1b\[[0-9;?]*[ -/]*[@-~]")]
    private static partial System.Text.RegularExpressions.Regex AnsiSequence();

    [System.Text.RegularExpressions.GeneratedRegex(@"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")]
    private static partial System.Text.RegularExpressions.Regex ControlCharacters();

    /// <summary>As <see cref="Run"/>, failing the test unless the child exits 0; returns its standard output.</summary>
    public static string Check(string program, IEnumerable<string> arguments, string? folder = null,
        IReadOnlyDictionary<string, string?>? environment = null, double minutes = 3)
    {
        Result result = Run(program, arguments, folder, environment, minutes: minutes);
        Assert.True(result.Exit == 0, $"{Describe(program, arguments)} exited {result.Exit}:\n{result.All}");
        return result.Output;
    }

    private static string Describe(string program, IEnumerable<string> arguments) => $"{program} {string.Join(' ', arguments)}";
}
