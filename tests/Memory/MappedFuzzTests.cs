using System.Text;
using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Memory;
using static NativeTensor.Tests.Memory.MappedFixtures;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// Fuzzing of the two header parsers through the public open calls: valid files mutated (bytes flipped, truncated,
/// extended, length fields replaced, dict/JSON text scrambled), random bytes, and generated safetensors headers with
/// random dtypes, shapes and offsets (past the end, reversed, overlapping). Every outcome is either a valid open whose
/// tensors lie inside the file (and read back as the file's bytes) or an InvalidDataException; never another
/// exception, never a crash.
/// </summary>
public sealed class MappedFuzzTests
{
    private static readonly byte[] ValidNpy = BuildNpy(1);
    private static readonly byte[] ValidNpy3 = BuildNpy(3);
    private static readonly byte[] ValidSafetensors = File.ReadAllBytes(Path("all_dtypes.safetensors"));

    /// <summary>What a mutation does; the int is a seed for its details.</summary>
    private enum Mutation { Flip, Truncate, Extend, LengthField, ScrambleText, RandomBytes }

    [Fact]
    public void Mutated_npy_files_open_validly_or_are_refused_with_invalid_data()
    {
        using TempFile file = Temp(".npy");
        int opened = 0;
        var cases = from mutation in Gen.Elements(Enum.GetValues<Mutation>())
                    from v3 in Gen.Elements(false, true)
                    from storedAs in Gen.Elements<DType?>(null, DType.Float32, DType.BFloat16, DType.Int64)
                    from seed in Gen.Choose(0, int.MaxValue)
                    select (mutation, v3, storedAs, seed);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            byte[] bytes = Mutate(c.v3 ? ValidNpy3 : ValidNpy, c.mutation, c.seed, lengthAt: 8, lengthBytes: c.v3 ? 4 : 2, NpyAlphabet);
            file.Write(bytes);
            opened += Outcome(file.Path, bytes, () => [MappedTensor.OpenNpy(file.Path, c.storedAs)]);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(1500));
        Assert.True(opened > 0, "no generated file opened: the fuzz only ever tested refusals");
    }

    [Fact]
    public void Mutated_safetensors_files_open_validly_or_are_refused_with_invalid_data()
    {
        using TempFile file = Temp(".safetensors");
        int opened = 0;
        var cases = from mutation in Gen.Elements(Enum.GetValues<Mutation>())
                    from seed in Gen.Choose(0, int.MaxValue)
                    select (mutation, seed);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            byte[] bytes = Mutate(ValidSafetensors, c.mutation, c.seed, lengthAt: 0, lengthBytes: 8, JsonAlphabet);
            file.Write(bytes);
            opened += Outcome(file.Path, bytes, () => [.. MappedTensor.OpenSafetensors(file.Path).Values]);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(1500));
        Assert.True(opened > 0, "no generated file opened: the fuzz only ever tested refusals");
    }

    [Fact]
    public void Generated_safetensors_headers_with_random_offsets_open_validly_or_are_refused_with_invalid_data()
    {
        using TempFile file = Temp(".safetensors");
        int opened = 0;
        var entry = from dtype in Gen.Elements("F32", "F16", "BF16", "I32", "I64", "F64", "U8", "bf16")
                    from rank in Gen.Choose(0, 3)
                    from shape in Gen.ArrayOf(Gen.OneOf(Gen.Choose(0, 4).Select(x => (long)x), Gen.Elements(-1L, 1L << 40, long.MaxValue)), rank)
                    from begin in Gen.OneOf(Gen.Choose(0, 64).Select(x => (long)x), Gen.Elements(-1L, 1L << 62))
                    from length in Gen.OneOf(Gen.Choose(-4, 64).Select(x => (long)x), Gen.Elements(long.MaxValue))
                    select (dtype, shape, begin, end: length == long.MaxValue ? long.MaxValue : begin + length);
        var files = from count in Gen.Choose(0, 4)
                    from entries in Gen.ArrayOf(entry, count)
                    from tiled in Gen.Elements(false, true)
                    from buffer in Gen.Choose(0, 96)
                    select (entries, tiled, buffer);
        Prop.ForAll(files.ToArbitrary(), f =>
        {
            var json = new StringBuilder("{");
            long offset = 0;
            for (int i = 0; i < f.entries.Length; i++)
            {
                (string dtype, long[] shape, long begin, long end) = f.entries[i];
                if (f.tiled)
                {
                    // Offsets the shapes imply (when they are sane), so valid files are generated too.
                    long size = shape.Aggregate(1L, (a, b) => b < 0 || a > (1L << 20) || b > (1L << 20) ? -1 : a * b) * (dtype.Length == 3 && dtype[1] == '6' ? 8 : dtype == "U8" ? 1 : dtype.EndsWith('2') ? 4 : 2);
                    (begin, end) = (offset, offset + Math.Max(size, 0));
                    offset = end;
                }
                json.Append(i == 0 ? "" : ",").Append($"\"t{i}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{begin},{end}]}}");
            }
            json.Append('}');
            byte[] bytes = Safetensors(json.ToString(), f.tiled ? (int)Math.Min(offset, 4096) : f.buffer);
            file.Write(bytes);
            opened += Outcome(file.Path, bytes, () => [.. MappedTensor.OpenSafetensors(file.Path).Values]);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(1500));
        Assert.True(opened > 0, "no generated file opened: the fuzz only ever tested refusals");
    }

    /// <summary>1 when every tensor opened lies inside the file and reads back as its bytes; 0 when the open threw InvalidDataException (anything else fails).</summary>
    private static int Outcome(string path, byte[] bytes, Func<MappedTensor[]> open)
    {
        MappedTensor[] tensors;
        try { tensors = open(); }
        catch (InvalidDataException e)
        {
            Assert.StartsWith(path + ": ", e.Message);
            return 0;
        }
        try
        {
            var ranges = new List<(long Begin, long End)>();
            foreach (MappedTensor t in tensors)
            {
                Assert.InRange(t.ByteOffset, 0, bytes.Length);
                Assert.InRange(t.ByteOffset + t.ByteCount, t.ByteOffset, bytes.Length);
                Assert.Equal(bytes[(int)t.ByteOffset..(int)(t.ByteOffset + t.ByteCount)], Tensor.CpuBytes(t.Tensor.Buffer, t.ByteCount).ToArray());
                if (t.ByteCount > 0) ranges.Add((t.ByteOffset, t.ByteOffset + t.ByteCount));
            }
            ranges.Sort();
            for (int i = 1; i < ranges.Count; i++) Assert.True(ranges[i].Begin >= ranges[i - 1].End, "two opened tensors overlap");
            return 1;
        }
        finally
        {
            foreach (MappedTensor t in tensors) t.Dispose();
        }
    }

    private const string NpyAlphabet = "{}()[],:' \"\n0123456789-LTrueFalsedcriptonhfo<>|=f4i8u2\\\x93";
    // With "u" and the hex digits a JSON escape such as \ud800 (an unpaired surrogate) can appear.
    private const string JsonAlphabet = "{}[],:\" \n0123456789-.eE+FIBUdtypeshapdaofs_\\\xffuDcb";

    private static byte[] Mutate(byte[] valid, Mutation mutation, int seed, int lengthAt, int lengthBytes, string alphabet)
    {
        var random = new Random(seed);
        byte[] bytes = (byte[])valid.Clone();
        switch (mutation)
        {
            case Mutation.Flip:
                for (int n = random.Next(1, 5); n > 0; n--) bytes[random.Next(Math.Min(bytes.Length, 160))] = (byte)random.Next(256);
                return bytes;
            case Mutation.Truncate:
                return bytes[..random.Next(bytes.Length)];
            case Mutation.Extend:
                return [.. bytes, .. Enumerable.Range(0, random.Next(1, 300)).Select(_ => (byte)random.Next(256))];
            case Mutation.LengthField:
                ulong value = random.Next(4) switch
                {
                    0 => (ulong)random.Next(0, 300),
                    1 => ulong.MaxValue - (ulong)random.Next(1000),
                    2 => 1UL << random.Next(64),
                    _ => (ulong)random.NextInt64(),
                };
                for (int i = 0; i < lengthBytes; i++) bytes[lengthAt + i] = (byte)(value >> (8 * i));
                return bytes;
            case Mutation.ScrambleText:
                // Characters the grammar cares about, dropped into the header text.
                int start = lengthAt + lengthBytes, end = Math.Min(bytes.Length, start + 140);
                for (int n = random.Next(1, 8); n > 0; n--)
                    bytes[random.Next(start, end)] = (byte)alphabet[random.Next(alphabet.Length)];
                return bytes;
            default:
                byte[] noise = new byte[random.Next(0, 200)];
                random.NextBytes(noise);
                if (noise.Length > 8 && random.Next(2) == 0) valid.AsSpan(0, 8).CopyTo(noise); // a believable start
                return noise;
        }
    }

    private static byte[] BuildNpy(int major) =>
        Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", System.Runtime.InteropServices.MemoryMarshal.AsBytes(Expected(12, F32).AsSpan()), major);
}
