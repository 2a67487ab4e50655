using System.Buffers.Binary;

namespace NativeTensor;

public sealed partial class Moments
{
    /// <summary>The format version <see cref="ToBytes"/> writes and <see cref="FromBytes"/> reads.</summary>
    public const byte FormatVersion = 1;

    private const int HeaderBytes = 32, ChecksumBytes = 4;
    private const byte DiagonalFlag = 1, SkipFlag = 2;
    private static ReadOnlySpan<byte> Magic => "NTMO"u8;

    /// <summary>
    /// The state as a small, versioned, little-endian binary form that <see cref="FromBytes"/> (in any process, on any
    /// machine) turns back into an equal state; serialising that again gives the same bytes.
    /// </summary>
    /// <remarks>
    /// Layout, version 1 (all integers and doubles little-endian; offsets in bytes):
    /// <code>
    ///  0  4  magic "NTMO"
    ///  4  1  version = 1
    ///  5  1  flags: bit 0 diagonal-only, bit 1 skips non-finite rows; other bits 0
    ///  6  2  reserved, 0
    ///  8  4  groups G (int32 &gt;= 1)
    /// 12  4  features d (int32 &gt;= 1)
    /// 16  8  count (int64 &gt;= 0)
    /// 24  8  non-finite rows skipped (int64 &gt;= 0)
    /// 32     for each group: d float64 means, then M2 as float64: the upper triangle row by row (M2[j, k] for k &gt;= j,
    ///        d(d+1)/2 values), or the d diagonal values when diagonal-only
    /// end-4  CRC-32 of every byte before it (IEEE 802.3 polynomial, as zlib.crc32), uint32
    /// </code>
    /// </remarks>
    /// <exception cref="InvalidOperationException">The state is larger than a byte array can hold (2 GiB).</exception>
    public byte[] ToBytes()
    {
        long length = SerialisedLength(Groups, Features, DiagonalOnly);
        if (length > Array.MaxLength)
            throw new InvalidOperationException($"{Describe()} serialises to {length:N0} bytes, more than a byte array holds ({Array.MaxLength:N0})");
        var data = new byte[length];
        Span<byte> span = data;
        Magic.CopyTo(span);
        span[4] = FormatVersion;
        span[5] = (byte)((DiagonalOnly ? DiagonalFlag : 0) | (SkipsNonFiniteRows ? SkipFlag : 0));
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], Groups);
        BinaryPrimitives.WriteInt32LittleEndian(span[12..], Features);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], Count);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], NonFiniteRows);
        int at = HeaderBytes, d = Features;
        for (int g = 0; g < Groups; g++)
        {
            for (int j = 0; j < d; j++, at += 8) BinaryPrimitives.WriteDoubleLittleEndian(span[at..], _mean[g * d + j]);
            for (int j = 0; j < d; j++)
                for (int k = j; k < (DiagonalOnly ? j + 1 : d); k++, at += 8)
                    BinaryPrimitives.WriteDoubleLittleEndian(span[at..], Scatter(g, j, k));
        }
        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], Crc32(span[..at]));
        return data;
    }

    /// <summary>
    /// The state that <see cref="ToBytes"/> wrote, checked field by field and by its checksum: any truncation, extension or
    /// corruption is refused with a message saying what is wrong, never turned into a state. <paramref name="device"/> is
    /// where later <see cref="Update"/> calls will run (null: <see cref="NativeTensor.Device.Default"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The data is not a version-1 Moments state: wrong magic, another version, unknown
    /// flags, impossible sizes, the wrong length for its header, a checksum mismatch, a negative count, or a payload no state
    /// can hold (values in an empty state, a negative variance). The parameter name is <c>data</c>.</exception>
    public static Moments FromBytes(ReadOnlySpan<byte> data, Device? device = null)
    {
        const string name = nameof(data);
        if (data.Length < 6)
            throw new ArgumentException($"data is {data.Length} bytes: too short to be a Moments state (the header alone is {HeaderBytes}); truncated?", name);
        if (!data[..4].SequenceEqual(Magic))
            throw new ArgumentException($"data starts with 0x{Convert.ToHexString(data[..4])}, not the magic \"NTMO\" (0x4E544D4F): not a serialised Moments state", name);
        if (data[4] != FormatVersion)
            throw new ArgumentException($"data is format version {data[4]}, but this library reads version {FormatVersion} only" +
                (data[4] > FormatVersion ? ": it was written by a newer NativeTensor" : ""), name);
        if (data.Length < HeaderBytes + ChecksumBytes)
            throw new ArgumentException($"data is {data.Length} bytes: a version-1 header and checksum take {HeaderBytes + ChecksumBytes}; truncated?", name);
        byte flags = data[5];
        if ((flags & ~(DiagonalFlag | SkipFlag)) != 0 || BinaryPrimitives.ReadUInt16LittleEndian(data[6..]) != 0)
            throw new ArgumentException($"data has flags 0x{flags:X2} and reserved bytes 0x{BinaryPrimitives.ReadUInt16LittleEndian(data[6..]):X4}: " +
                "version 1 defines flag bits 0 and 1 only, and reserved 0", name);
        int groups = BinaryPrimitives.ReadInt32LittleEndian(data[8..]), features = BinaryPrimitives.ReadInt32LittleEndian(data[12..]);
        bool diagonal = (flags & DiagonalFlag) != 0;
        if (groups < 1 || features < 1)
            throw new ArgumentException($"data says {groups} groups of {features} features: both must be at least 1", name);
        long expected = SerialisedLength(groups, features, diagonal);
        if (data.Length != expected)
            throw new ArgumentException($"data is {data.Length} bytes, but a version-1 state of {groups} group(s) x {features} features " +
                $"({(diagonal ? "diagonal-only" : "full")}) is {expected} bytes: {(data.Length < expected ? "truncated" : "extended")} or corrupted", name);
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(data[^ChecksumBytes..]), computed = Crc32(data[..^ChecksumBytes]);
        if (stored != computed)
            throw new ArgumentException($"data's checksum is 0x{stored:X8} but its bytes give 0x{computed:X8}: the state is corrupted", name);
        long count = BinaryPrimitives.ReadInt64LittleEndian(data[16..]), skipped = BinaryPrimitives.ReadInt64LittleEndian(data[24..]);
        if (count < 0 || skipped < 0)
            throw new ArgumentException($"data says count {count} and {skipped} skipped rows: counts cannot be negative", name);

        var state = new Moments(features, groups, device, diagonal, (flags & SkipFlag) != 0) { Count = count, NonFiniteRows = skipped };
        int at = HeaderBytes, d = features;
        for (int g = 0; g < groups; g++)
        {
            for (int j = 0; j < d; j++, at += 8) state._mean[g * d + j] = BinaryPrimitives.ReadDoubleLittleEndian(data[at..]);
            for (int j = 0; j < d; j++)
                for (int k = j; k < (diagonal ? j + 1 : d); k++, at += 8)
                {
                    double value = BinaryPrimitives.ReadDoubleLittleEndian(data[at..]);
                    if (j == k && value < 0)
                        throw new ArgumentException($"data holds M2[{j}, {j}] = {value} in group {g}: a sum of squares cannot be negative", name);
                    if (diagonal) state._m2[g * d + j] = value;
                    else state._m2[((long)g * d + j) * d + k] = state._m2[((long)g * d + k) * d + j] = value;
                }
        }
        if (count == 0 && (state._mean.Any(v => BitConverter.DoubleToInt64Bits(v) != 0) || state._m2.Any(v => BitConverter.DoubleToInt64Bits(v) != 0)))
            throw new ArgumentException("data says count 0 but holds non-zero means or scatters: an empty state is all zeros", name);
        return state;
    }

    /// <summary>Bytes of a state of this shape; long.MaxValue when that does not fit a long (no such state exists).</summary>
    private static long SerialisedLength(int groups, int features, bool diagonal)
    {
        try { return checked(HeaderBytes + ChecksumBytes + 8L * groups * (features + (diagonal ? features : (long)features * (features + 1) / 2))); }
        catch (OverflowException) { return long.MaxValue; }
    }

    private static readonly uint[] CrcTable = MakeCrcTable();

    /// <summary>CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF): zlib's crc32.</summary>
    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFF_FFFF;
        foreach (byte b in bytes) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    private static uint[] MakeCrcTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int bit = 0; bit < 8; bit++) c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        return table;
    }
}
