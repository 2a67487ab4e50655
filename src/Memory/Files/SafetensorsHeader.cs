using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace NativeTensor.Memory.Files;

/// <summary>One tensor of a <c>.safetensors</c> file: its bytes are <c>[Begin, End)</c> of the file.</summary>
internal sealed record SafetensorsEntry(string Name, DType DType, long[] Shape, long Begin, long End);

/// <summary>
/// A validated <c>.safetensors</c> header (huggingface/safetensors' format): an 8-byte little-endian length N, N bytes
/// of UTF-8 JSON mapping each tensor name to <c>{"dtype", "shape", "data_offsets": [begin, end]}</c> (offsets into the
/// byte buffer after the header) plus an optional <c>"__metadata__"</c> object of strings, then the byte buffer.
/// </summary>
/// <remarks>
/// The rules are the reference reader's: N at most 100,000,000 (its <c>MAX_HEADER_SIZE</c>), no key twice, every
/// tensor's size = product(shape) x itemsize, and the tensors, in offset order, tile the byte buffer exactly (a
/// tensor beginning before the previous one ends overlaps it; a gap or trailing bytes mean a damaged file).
/// </remarks>
internal sealed record SafetensorsHeader(IReadOnlyList<SafetensorsEntry> Tensors, IReadOnlyDictionary<string, string> Metadata, long DataOffset)
{
    /// <summary>The reference reader's limit on the JSON header's length.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Reads and validates the header of <paramref name="file"/> (of <paramref name="fileLength"/> bytes) with bounded reads.</summary>
    /// <exception cref="InvalidDataException">Any rule is broken; the message names <paramref name="path"/> and the rule.</exception>
    public static SafetensorsHeader Read(string path, SafeFileHandle file, long fileLength)
    {
        long n = JsonLength(path, FileBytes.Read(path, file, 0, (int)Math.Min(fileLength, 8)), fileLength);
        return Parse(path, FileBytes.Read(path, file, 0, checked((int)(8 + n))), fileLength);
    }

    /// <summary>Validates a header from the first bytes of a file of <paramref name="fileLength"/> bytes.</summary>
    /// <param name="path">The file, for messages.</param>
    /// <param name="start">At least the length field and the JSON (more is ignored).</param>
    /// <param name="fileLength">The file's length in bytes.</param>
    /// <exception cref="InvalidDataException">Any rule is broken; the message names <paramref name="path"/> and the rule.</exception>
    public static SafetensorsHeader Parse(string path, ReadOnlyMemory<byte> start, long fileLength)
    {
        long n = JsonLength(path, start.Span, fileLength);
        if (start.Length - 8 < n) throw FormatErrors.Refuse(path, $"the header needs {8 + n} bytes but only {start.Length} were read");
        ReadOnlyMemory<byte> header = start.Slice(8, (int)n);
        ReadOnlySpan<byte> json = header.Span;
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(json);
        }
        catch (DecoderFallbackException)
        {
            throw FormatErrors.Refuse(path, "the JSON header is not valid UTF-8");
        }

        long bufferBytes = fileLength - 8 - n;
        var tensors = new List<SafetensorsEntry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using JsonDocument document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw FormatErrors.Refuse(path, $"the JSON header is a {root.ValueKind}, not an object");
            foreach (JsonProperty property in Distinct(path, root, "the header"))
            {
                if (property.Name == "__metadata__") ReadMetadata(path, property.Value, metadata);
                else tensors.Add(Entry(path, property));
            }
        }
        catch (JsonException e)
        {
            throw FormatErrors.Refuse(path, $"the header is not valid JSON ({e.Message})");
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json reads a name or string with an unpaired surrogate escape (\ud800) only to throw here.
            throw FormatErrors.Refuse(path, "the header has a JSON string that is not valid UTF-16 (an unpaired surrogate escape)");
        }
        CheckTiling(path, tensors, bufferBytes);
        return new SafetensorsHeader(tensors, metadata.ToFrozenDictionary(StringComparer.Ordinal), 8 + n);
    }

    private static long JsonLength(string path, ReadOnlySpan<byte> start, long fileLength)
    {
        if (start.Length < 8) throw FormatErrors.Refuse(path, $"{fileLength} bytes is too short for a .safetensors file (an 8-byte header length comes first)");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(start);
        if (n > MaxHeaderBytes) throw FormatErrors.Refuse(path, $"header length {n} exceeds the format's limit of {MaxHeaderBytes} bytes");
        if ((long)n > fileLength - 8) throw FormatErrors.Refuse(path, $"header length {n} runs past the end of the file ({fileLength} bytes)");
        if (n < 2) throw FormatErrors.Refuse(path, $"header length {n} is too short for a JSON object");
        return (long)n;
    }

    private static SafetensorsEntry Entry(string path, JsonProperty property)
    {
        string name = property.Name;
        if (property.Value.ValueKind != JsonValueKind.Object)
            throw FormatErrors.Refuse(path, $"tensor '{name}' is a JSON {property.Value.ValueKind}, not an object");
        string? dtypeName = null;
        long[]? shape = null, offsets = null;
        foreach (JsonProperty field in Distinct(path, property.Value, $"tensor '{name}'"))
        {
            switch (field.Name)
            {
                case "dtype" when field.Value.ValueKind == JsonValueKind.String: dtypeName = field.Value.GetString(); break;
                case "shape": shape = Integers(path, field.Value, $"tensor '{name}' shape"); break;
                case "data_offsets": offsets = Integers(path, field.Value, $"tensor '{name}' data_offsets"); break;
                default: throw FormatErrors.Refuse(path, $"tensor '{name}' has field '{field.Name}' ({field.Value.ValueKind}): a tensor has a string 'dtype', 'shape' and 'data_offsets'");
            }
        }
        if (dtypeName is null || shape is null || offsets is null)
            throw FormatErrors.Refuse(path, $"tensor '{name}' lacks {(dtypeName is null ? "'dtype'" : shape is null ? "'shape'" : "'data_offsets'")}");
        DType dtype = dtypeName switch
        {
            "F32" => DType.Float32,
            "F16" => DType.Float16,
            "BF16" => DType.BFloat16,
            "I32" => DType.Int32,
            "I64" => DType.Int64,
            _ => throw FormatErrors.Refuse(path, $"tensor '{name}' has dtype {dtypeName}: NativeTensor reads F32, F16, BF16, I32 and I64"),
        };
        if (offsets.Length != 2) throw FormatErrors.Refuse(path, $"tensor '{name}' data_offsets has {offsets.Length} numbers, not [begin, end]");
        (long begin, long end) = (offsets[0], offsets[1]);
        if (begin > end) throw FormatErrors.Refuse(path, $"tensor '{name}' data_offsets [{begin}, {end}]: begin is past end");
        long bytes = FormatErrors.ShapeBytes(path, $"tensor '{name}' shape", shape, dtype.SizeOf());
        if (end - begin != bytes)
            throw FormatErrors.Refuse(path, $"tensor '{name}' data_offsets [{begin}, {end}] hold {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtypeName} needs {bytes}");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>The tensors, in offset order, must cover [0, bufferBytes) exactly once.</summary>
    private static void CheckTiling(string path, List<SafetensorsEntry> tensors, long bufferBytes)
    {
        long expected = 0;
        string previous = "the header";
        foreach (SafetensorsEntry t in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (t.End > bufferBytes)
                throw FormatErrors.Refuse(path, $"tensor '{t.Name}' data_offsets [{t.Begin}, {t.End}] run past the end of the {bufferBytes}-byte buffer after the header");
            if (t.Begin < expected)
                throw FormatErrors.Refuse(path, $"tensor '{t.Name}' data_offsets [{t.Begin}, {t.End}] overlap {previous}, which ends at {expected}");
            if (t.Begin > expected)
                throw FormatErrors.Refuse(path, $"tensor '{t.Name}' begins at {t.Begin} but {previous} ends at {expected}: a gap in the buffer");
            expected = t.End;
            previous = $"tensor '{t.Name}'";
        }
        if (expected != bufferBytes)
            throw FormatErrors.Refuse(path, $"the tensors end at {expected} of the {bufferBytes}-byte buffer after the header: trailing bytes");
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object) throw FormatErrors.Refuse(path, $"__metadata__ is a JSON {value.ValueKind}, not an object of strings");
        foreach (JsonProperty entry in Distinct(path, value, "__metadata__"))
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw FormatErrors.Refuse(path, $"__metadata__ '{entry.Name}' is a JSON {entry.Value.ValueKind}: metadata values are strings");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static long[] Integers(string path, JsonElement value, string what)
    {
        if (value.ValueKind != JsonValueKind.Array) throw FormatErrors.Refuse(path, $"{what} is a JSON {value.ValueKind}, not an array of integers");
        var result = new long[value.GetArrayLength()];
        int i = 0;
        foreach (JsonElement item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long n) || n < 0)
                throw FormatErrors.Refuse(path, $"{what}[{i}] = {item.GetRawText()}: expected a non-negative 64-bit integer");
            result[i++] = n;
        }
        return result;
    }

    /// <summary>An object's properties, refusing a name seen twice (JSON allows it; the format does not).</summary>
    private static List<JsonProperty> Distinct(string path, JsonElement obj, string where)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var properties = new List<JsonProperty>();
        foreach (JsonProperty property in obj.EnumerateObject())
        {
            if (!seen.Add(property.Name)) throw FormatErrors.Refuse(path, $"{where} has key '{property.Name}' twice");
            properties.Add(property);
        }
        return properties;
    }
}
