using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Cases.CaseBytes;

namespace NativeTensor.Cases;

/// <summary>What a <see cref="ConvertCase"/> converts.</summary>
public enum ConvertInputs
{
    /// <summary>Random bit patterns from the seed: NaN payloads, infinities, subnormals and ±0 throughout.</summary>
    RandomBits,

    /// <summary>The shared special values of the source dtype, cycled.</summary>
    SpecialValues,

    /// <summary>Finite values of every magnitude the formats share (2^-20 .. 2^15), so no element takes a rare path: perf's timed inputs.</summary>
    Magnitudes,

    /// <summary>The case's own <see cref="ConvertCase.Bits"/>: every 16-bit pattern, every rounding boundary.</summary>
    Listed,
}

/// <summary>
/// One <see cref="Precision.Convert"/>: <see cref="Shape"/> elements of <see cref="From"/> converted to <see cref="To"/>,
/// into a reused poisoned output and into a new one. Conversions are specified to the bit (round to nearest even, NaN
/// rules): <c>Tolerances.Ulps("convert", ...)</c> is 0, so every element must equal <see cref="PrecisionReference.Convert"/>.
/// </summary>
public sealed record ConvertCase(DType From, DType To, long[] Shape, int Seed, ConvertInputs Inputs = ConvertInputs.RandomBits, uint[]? Bits = null) : IOpCase
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);

    public string Op => $"precision.convert {Short(From)} -> {Short(To)}";

    public string Name => $"{Elements} {From} elements [{string.Join(", ", Shape)}] ({Inputs}, seed {Seed}) -> {To}";

    public override string ToString() => Name;

    public long MovedBytes => Elements * (From.SizeOf() + To.SizeOf());

    public string Standard => "bit-exact vs PrecisionReference";

    public long Flops => 0;

    /// <summary>Converts <paramref name="bits"/> (elements of <paramref name="from"/>) as a one-dimensional case.</summary>
    public static ConvertCase Of(DType from, DType to, uint[] bits) => new(from, to, [bits.Length], 0, ConvertInputs.Listed, bits);

    /// <summary>The source bytes the case describes.</summary>
    public byte[] SourceBytes()
    {
        int size = From.SizeOf();
        switch (Inputs)
        {
            case ConvertInputs.RandomBits: return RandomBytes(new Random(Seed), Elements * size);
            case ConvertInputs.SpecialValues: return SpecialValues.Fill(From, Elements);
            case ConvertInputs.Listed:
                var listed = new byte[Bits!.Length * size];
                for (int i = 0; i < Bits.Length; i++) BitConverter.GetBytes(Bits[i]).AsSpan(0, size).CopyTo(listed.AsSpan(i * size));
                return listed;
            default: return Magnitudes(From, Elements, Seed);
        }
    }

    /// <summary><see cref="PrecisionReference.Convert"/> of every element of <paramref name="source"/>.</summary>
    public static byte[] Expected(DType from, DType to, byte[] source)
    {
        int inSize = from.SizeOf(), outSize = to.SizeOf();
        long count = source.Length / inSize;
        var expected = new byte[count * outSize];
        for (long i = 0; i < count; i++)
        {
            ulong bits = inSize == 4 ? BitConverter.ToUInt32(source, (int)(i * 4)) : BitConverter.ToUInt16(source, (int)(i * 2));
            ulong result = PrecisionReference.Convert(bits, from, to);
            if (outSize == 4) BitConverter.TryWriteBytes(expected.AsSpan((int)(i * 4)), (uint)result);
            else BitConverter.TryWriteBytes(expected.AsSpan((int)(i * 2)), (ushort)result);
        }
        return expected;
    }

    public string? Check(Device device)
    {
        byte[] bytes = SourceBytes();
        byte[] expected = Expected(From, To, bytes);
        using Tensor source = FromBytes(From, Shape, device, bytes);
        using (Tensor output = Poisoned(To, Shape, device))
        {
            if (!ReferenceEquals(output, Precision.Convert(source, To, output))) return "the output tensor passed in was not returned";
            if (Differs(expected, Bytes(output), "reused poisoned output", To.SizeOf()) is { } failure) return failure;
        }
        using Tensor fresh = Precision.Convert(source, To);
        if (!fresh.Shape.SequenceEqual(Shape)) return $"the new output has shape [{string.Join(", ", fresh.Shape)}]";
        if (fresh.DType != To) return $"the new output is {fresh.DType}";
        if (!ReferenceEquals(device, fresh.Device)) return $"the new output is on {fresh.Device}, not {device}";
        return Differs(expected, Bytes(fresh), "new output", To.SizeOf());
    }

    public PreparedCase Prepare(Device device)
    {
        Tensor source = FromBytes(From, Shape, device, SourceBytes());
        Tensor target = Tensor.Empty(To, Shape, device);
        return new PreparedCase(() => Precision.Convert(source, To, target), source, target);
    }

    private static string Short(DType dtype) => dtype switch
    {
        DType.Float32 => "f32",
        DType.Float16 => "f16",
        _ => "bf16",
    };
}
