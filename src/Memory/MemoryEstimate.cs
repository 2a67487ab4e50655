using System.Globalization;
using System.Text;

namespace NativeTensor.Memory;

/// <summary>One line of a <see cref="MemoryEstimate"/>: what it is, how many bytes, and the arithmetic that gives them.</summary>
/// <param name="Name">What the bytes hold, in the user's words ("KV cache", "optimizer state").</param>
/// <param name="Bytes">The bytes, at least 0.</param>
/// <param name="Formula">The product spelled out with its numbers, e.g. <c>2 x 24 layers x 8 kv heads x 128 x 4096 tokens x 2 B</c>.</param>
public sealed record MemoryTerm(string Name, long Bytes, string Formula);

/// <summary>
/// An estimate of the memory a piece of work needs, explained: each term with its formula, and their sum. Produced by
/// <see cref="MemoryEstimator"/>; <see cref="ToString"/> prints the table.
/// </summary>
public sealed class MemoryEstimate
{
    /// <summary>An estimate titled <paramref name="title"/> with the given terms.</summary>
    /// <exception cref="ArgumentNullException">title or terms is null, or a term is null (the message gives its index).</exception>
    /// <exception cref="ArgumentException">A term has negative bytes.</exception>
    /// <exception cref="OverflowException">The terms sum past 2^63 - 1 bytes.</exception>
    public MemoryEstimate(string title, IReadOnlyList<MemoryTerm> terms)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(terms);
        long total = 0;
        for (int i = 0; i < terms.Count; i++)
        {
            MemoryTerm term = terms[i] ?? throw new ArgumentNullException(nameof(terms), $"term {i} is null");
            if (term.Bytes < 0) throw new ArgumentException($"term '{term.Name}' has {term.Bytes} bytes: must be at least 0", nameof(terms));
            total = total > long.MaxValue - term.Bytes
                ? throw new OverflowException($"{title}: the terms sum past 2^63 - 1 bytes at '{term.Name}'")
                : total + term.Bytes;
        }
        Title = title;
        Terms = terms.ToArray();
        Total = total;
    }

    /// <summary>What is estimated ("eager windows", "training", "inference").</summary>
    public string Title { get; }

    /// <summary>The terms, in the order they were added.</summary>
    public IReadOnlyList<MemoryTerm> Terms { get; }

    /// <summary>The sum of the terms' bytes.</summary>
    public long Total { get; }

    /// <summary>The bytes of the term named <paramref name="name"/>, or 0 when there is none.</summary>
    public long this[string name] => Terms.Where(t => t.Name == name).Sum(t => t.Bytes);

    /// <summary>A table: one row per term (name, bytes, human size, formula), then the total.</summary>
    public override string ToString()
    {
        int width = Math.Max(5, Terms.Count == 0 ? 0 : Terms.Max(t => t.Name.Length));
        var text = new StringBuilder();
        text.AppendLine(Title);
        foreach (MemoryTerm term in Terms)
            text.AppendLine(CultureInfo.InvariantCulture, $"  {term.Name.PadRight(width)}  {term.Bytes,22:N0} B  {Bytes(term.Bytes),10}  = {term.Formula}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  {"total".PadRight(width)}  {Total,22:N0} B  {Bytes(Total),10}");
        return text.ToString();
    }

    /// <summary><paramref name="bytes"/> in the largest binary unit that keeps it at least 1, two decimals: <c>12.19 GiB</c>.</summary>
    internal static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
        return unit == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{value:F2} {units[unit]}");
    }
}
