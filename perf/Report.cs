using System.Runtime.InteropServices;
using System.Text;
using NativeTensor.Cpu;

namespace NativeTensor.Perf;

/// <summary>
/// Everything perf prints goes through here: to the console as it happens, and into a markdown copy that is
/// saved at the end so the figures can be committed. Plain lines sit in fenced blocks in the markdown; tables
/// are markdown tables, which read the same on a console.
/// </summary>
internal sealed class Report
{
    private readonly StringBuilder _markdown = new();
    private bool _inBlock;

    /// <summary>A section title: <c>## title</c> in both outputs.</summary>
    public void Section(string title)
    {
        CloseBlock();
        Console.WriteLine();
        Console.WriteLine($"## {title}");
        _markdown.AppendLine().AppendLine($"## {title}").AppendLine();
    }

    /// <summary>A plain line (kept verbatim in the markdown by a fenced block).</summary>
    public void Line(string text = "")
    {
        if (!_inBlock)
        {
            _markdown.AppendLine("```text");
            _inBlock = true;
        }
        Console.WriteLine(text);
        _markdown.AppendLine(text);
    }

    /// <summary>Rows of cells as a markdown table with padded columns; the first row is the header.</summary>
    public void Table(IReadOnlyList<string[]> rows, bool[] rightAligned)
    {
        CloseBlock();
        var widths = new int[rows[0].Length];
        foreach (string[] row in rows)
            for (int c = 0; c < row.Length; c++) widths[c] = Math.Max(widths[c], row[c].Length);
        for (int r = 0; r < rows.Count; r++)
        {
            Emit(Cells(rows[r], widths, rightAligned));
            if (r == 0)
                Emit(Cells(widths.Select((w, c) => rightAligned[c] ? new string('-', w - 1) + ":" : new string('-', w)).ToArray(), widths, rightAligned));
        }
        _markdown.AppendLine();
    }

    /// <summary>Writes the markdown copy to <paramref name="path"/>, creating its folder.</summary>
    public void Save(string path)
    {
        CloseBlock();
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        File.WriteAllText(path, _markdown.ToString());
    }

    /// <summary>The machine, the runtime and the run's settings, so a saved file says where its figures come from.</summary>
    public void Header(string mode)
    {
        _markdown.AppendLine("# NativeTensor perf").AppendLine();
        Line($"machine : {CpuModel()}, {Environment.ProcessorCount} cores, {MemoryText()}, widest vector {SimdWidths.Best.Describe()}");
        Line($"runtime : {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}");
        Line($"run     : {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {mode}");
        Line("units   : GB = 10^9 bytes, MB = 10^6 bytes; GB/s counts bytes read + bytes written");
    }

    private void Emit(string line)
    {
        Console.WriteLine(line);
        _markdown.AppendLine(line);
    }

    private void CloseBlock()
    {
        if (!_inBlock) return;
        _markdown.AppendLine("```");
        _inBlock = false;
    }

    private static string Cells(string[] row, int[] widths, bool[] right) =>
        "| " + string.Join(" | ", row.Select((cell, c) => right[c] ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]))) + " |";

    /// <summary>The CPU's model name from /proc/cpuinfo, or the architecture where there is none.</summary>
    public static string CpuModel()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal)) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    private static string MemoryText() =>
        $"{GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (double)(1L << 30):F0} GiB";
}
