using System.Runtime.InteropServices;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Cases.CaseBytes;

namespace NativeTensor.Cases;

/// <summary>
/// One fused gather-convert, <c>Windows.Gather(..., outputType)</c>: a direction among Float32, Float16 and BFloat16,
/// frames of rank 1 to 3 (random bits with special values mixed in, or the special values alone), a window and a batch
/// of starts. Both halves are specified to the bit, so the result must equal the reference composition
/// (<see cref="WindowsReference.Gather{T}"/>, then <see cref="PrecisionReference.Convert"/>) exactly.
/// </summary>
public sealed record GatherConvertCase(DType From, DType To, long[] FrameShape, int Window, long[] Starts, int Seed, bool SpecialFrames = false) : IOpCase
{
    public long FrameCount => FrameShape[0];

    public long RowElements => FrameShape.Skip(1).Aggregate(1L, (a, b) => a * b);

    public long[] OutputShape => [Starts.Length, Window, .. FrameShape.Skip(1)];

    public override string ToString() =>
        $"{From} -> {To}, frames [{string.Join(", ", FrameShape)}]{(SpecialFrames ? " of special values" : "")}, window {Window}, " +
        $"starts [{(Starts.Length <= 40 ? string.Join(", ", Starts) : $"{Starts.Length} starts")}], seed {Seed}";

    public string Op => "windows.gather-convert";

    public string Name => ToString();

    public string Standard => "bit-exact vs WindowsReference then PrecisionReference";

    /// <summary>Each gathered element read once in <see cref="From"/> and written once in <see cref="To"/>.</summary>
    public long MovedBytes => Starts.Length * Window * RowElements * (From.SizeOf() + To.SizeOf());

    public long Flops => 0;

    /// <summary>The frames' bytes: <see cref="RandomBits"/> from <see cref="Seed"/>, or the special values cycled.</summary>
    public byte[] FrameBytes() => SpecialFrames
        ? SpecialValues.Fill(From, FrameCount * RowElements)
        : RandomBits(From, FrameCount * RowElements, new Random(Seed));

    /// <summary>
    /// The unfused device composition (gather, then convert) and the fused op with host starts into a poisoned reused
    /// output, with device starts into it poisoned again, and into a new output of the right dtype, shape and device:
    /// each bit-exact with the reference composition.
    /// </summary>
    public string? Check(Device device)
    {
        byte[] bytes = FrameBytes();
        byte[] reference = Reference(From, To, bytes, FrameCount, RowElements, Starts, Window);
        int size = To.SizeOf();
        using Tensor frames = FromBytes(From, FrameShape, device, bytes);
        using (Tensor plain = Windows.Gather(frames, Starts, Window))
        using (Tensor unfused = Precision.Convert(plain, To))
            if (Differs(reference, Bytes(unfused), "the unfused device composition", size) is { } failure) return failure;

        using (Tensor output = Poisoned(To, OutputShape, device))
        {
            if (!ReferenceEquals(output, Windows.Gather(frames, Starts, Window, output, To))) return "host starts: the output tensor passed in was not returned";
            if (Differs(reference, Bytes(output), "host starts", size) is { } failure) return failure;
        }
        using (Tensor output = Poisoned(To, OutputShape, device))
        using (Tensor starts = OnDevice(Starts, device))
        {
            if (!ReferenceEquals(output, Windows.Gather(frames, starts, Window, output, To))) return "device starts: the output tensor passed in was not returned";
            if (Differs(reference, Bytes(output), "device starts", size) is { } failure) return failure;
        }
        using Tensor fresh = Windows.Gather(frames, Starts, Window, outputType: To);
        if (fresh.DType != To) return $"a new output is {fresh.DType}";
        if (!fresh.Shape.SequenceEqual(OutputShape)) return $"a new output has shape [{string.Join(", ", fresh.Shape)}]";
        if (!ReferenceEquals(device, fresh.Device)) return $"a new output is on {fresh.Device}, not {device}";
        return Differs(reference, Bytes(fresh), "a new output", size);
    }

    public PreparedCase Prepare(Device device)
    {
        Tensor frames = FromBytes(From, FrameShape, device, FrameBytes());
        Tensor output = Tensor.Empty(To, OutputShape, device);
        return new PreparedCase(() => Windows.Gather(frames, Starts, Window, output, To), frames, output);
    }

    /// <summary>
    /// <paramref name="count"/> elements of <paramref name="dtype"/>: random bits (NaN payloads, subnormals and ±0 come
    /// up often in 16-bit formats), one element in four replaced by a special value so ±Inf and the binary32 edge cases,
    /// which random bits almost never hit, are in every case.
    /// </summary>
    public static byte[] RandomBits(DType dtype, long count, Random random)
    {
        byte[] bytes = RandomBytes(random, count * dtype.SizeOf());
        ulong[] special = SpecialValues.Bits(dtype);
        int size = dtype.SizeOf();
        for (long i = 0; i < count; i++)
            if (random.Next(4) == 0)
                BitConverter.GetBytes(special[random.Next(special.Length)]).AsSpan(0, size).CopyTo(bytes.AsSpan((int)(i * size)));
        return bytes;
    }

    /// <summary>The reference composition: <see cref="WindowsReference.Gather{T}"/> on raw bits, then <see cref="PrecisionReference.Convert"/> per element.</summary>
    public static byte[] Reference(DType from, DType to, byte[] frames, long frameCount, long rowElements, long[] starts, int window)
    {
        ulong[] gathered = from == DType.Float32
            ? WindowsReference.Gather(MemoryMarshal.Cast<byte, uint>(frames).ToArray(), frameCount, rowElements, starts, window).Select(b => (ulong)b).ToArray()
            : WindowsReference.Gather(MemoryMarshal.Cast<byte, ushort>(frames).ToArray(), frameCount, rowElements, starts, window).Select(b => (ulong)b).ToArray();
        int size = to.SizeOf();
        var result = new byte[gathered.Length * size];
        for (int i = 0; i < gathered.Length; i++)
            BitConverter.GetBytes(PrecisionReference.Convert(gathered[i], from, to)).AsSpan(0, size).CopyTo(result.AsSpan(i * size));
        return result;
    }
}
