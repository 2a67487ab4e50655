using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Cases.CaseBytes;

namespace NativeTensor.Cases;

/// <summary>What fills one gradient of an <see cref="UnscaleCase"/>.</summary>
public enum GradientFill
{
    /// <summary>Random bits: NaN payloads, ±Inf, subnormals and ±0 throughout.</summary>
    RandomBits,

    /// <summary>Random bits with every NaN and ±Inf made finite (the exponent's top bit cleared).</summary>
    FiniteBits,

    /// <summary>The shared special values, cycled.</summary>
    SpecialValues,

    /// <summary>Finite values between 2^-20 and 2^15 in magnitude (<see cref="CaseBytes.Magnitudes"/>): perf's timed inputs.</summary>
    Magnitudes,
}

/// <summary>One gradient of a list: its dtype, its length and what fills it.</summary>
public readonly record struct GradientInput(DType DType, int Length, GradientFill Fill = GradientFill.RandomBits)
{
    public override string ToString() => $"{Length} {DType} {Fill}";
}

/// <summary>
/// One call of <see cref="Precision.UnscaleAndCheck"/> (or, with <see cref="FindOnly"/>, of the read-only
/// <see cref="Precision.FindNonFinite"/>) on a list of gradients, filled in order from one <see cref="Random"/> of
/// <see cref="Seed"/>, with <see cref="Planted"/> bits optionally written at one element of one gradient. Both ops are
/// specified to the bit (<see cref="UnscaleReference.Unscale"/>): every element and the flag must equal the reference.
/// </summary>
public sealed record UnscaleCase(GradientInput[] Gradients, float Scale, int Seed, (int Gradient, int At, ulong Bits)? Planted = null, bool FindOnly = false) : IOpCase
{
    public string Op => FindOnly ? "precision.find-non-finite" : $"precision.unscale-and-check {string.Join(" + ", Gradients.Select(g => g.DType).Distinct())}";

    public string Name => $"[{string.Join(", ", Gradients.Take(6))}{(Gradients.Length > 6 ? $", ... {Gradients.Length} gradients" : "")}]" +
        $"{(FindOnly ? "" : $" x {Scale:R}")}, seed {Seed}{(Planted is { } p ? $", 0x{p.Bits:X} planted at [{p.Gradient}][{p.At}]" : "")}";

    public override string ToString() => Name;

    private long Bytes => Gradients.Sum(g => (long)g.Length * g.DType.SizeOf());

    /// <summary>Unscaling reads and writes every element once; finding only reads.</summary>
    public long MovedBytes => FindOnly ? Bytes : 2 * Bytes;

    public string Standard => "bit-exact and flag vs PrecisionReference";

    public long Flops => FindOnly ? 0 : Gradients.Sum(g => (long)g.Length);

    /// <summary>Every gradient's bytes, in list order.</summary>
    public byte[][] Inputs()
    {
        var random = new Random(Seed);
        byte[][] inputs = [.. Gradients.Select(g => g.Fill switch
        {
            GradientFill.SpecialValues => SpecialValues.Fill(g.DType, g.Length),
            GradientFill.Magnitudes => Magnitudes(g.DType, g.Length, random.Next()),
            GradientFill.FiniteBits => MadeFinite(g.DType, RandomBytes(random, (long)g.Length * g.DType.SizeOf())),
            _ => RandomBytes(random, (long)g.Length * g.DType.SizeOf()),
        })];
        if (Planted is { } p)
        {
            int size = Gradients[p.Gradient].DType.SizeOf();
            BitConverter.GetBytes(p.Bits).AsSpan(0, size).CopyTo(inputs[p.Gradient].AsSpan(p.At * size));
        }
        return inputs;
    }

    /// <summary>Whether a NaN or ±Inf pattern of <paramref name="dtype"/>: all exponent bits set.</summary>
    public static bool IsNonFinite(DType dtype, ulong bits) => dtype switch
    {
        DType.Float32 => (bits & 0x7F80_0000) == 0x7F80_0000,
        DType.Float16 => (bits & 0x7C00) == 0x7C00,
        _ => (bits & 0x7F80) == 0x7F80,
    };

    /// <summary>The same bits with every NaN and ±Inf made finite by clearing the exponent's top bit.</summary>
    public static byte[] MadeFinite(DType dtype, byte[] bytes)
    {
        int size = dtype.SizeOf();
        for (int i = 0; i < bytes.Length / size; i++)
        {
            ulong bits = size == 4 ? BitConverter.ToUInt32(bytes, i * 4) : BitConverter.ToUInt16(bytes, i * 2);
            if (IsNonFinite(dtype, bits)) bytes[i * size + size - 1] ^= 0x40;
        }
        return bytes;
    }

    /// <summary><see cref="UnscaleReference.Unscale"/> of every element; <paramref name="nonFinite"/> says whether any input was NaN or ±Inf.</summary>
    public static byte[] Expected(DType dtype, byte[] source, float scale, out bool nonFinite)
    {
        nonFinite = false;
        var expected = new byte[source.Length];
        int size = dtype.SizeOf();
        for (int i = 0; i < source.Length / size; i++)
        {
            uint bits = size == 4 ? BitConverter.ToUInt32(source, i * 4) : BitConverter.ToUInt16(source, i * 2);
            uint result = UnscaleReference.Unscale(bits, dtype, scale, out bool seen);
            nonFinite |= seen;
            if (size == 4) BitConverter.TryWriteBytes(expected.AsSpan(i * 4), result);
            else BitConverter.TryWriteBytes(expected.AsSpan(i * 2), (ushort)result);
        }
        return expected;
    }

    public string? Check(Device device) => Check(device, out _);

    /// <summary>Runs the op; <paramref name="flag"/> is what the device reported (for tests that also know what to expect).</summary>
    public string? Check(Device device, out bool flag)
    {
        byte[][] inputs = Inputs();
        Tensor[] tensors = [.. inputs.Select((b, k) => FromBytes(Gradients[k].DType, [Gradients[k].Length], device, b))];
        try
        {
            flag = FindOnly ? Precision.FindNonFinite(tensors) : Precision.UnscaleAndCheck(tensors, Scale);
            bool expectedFlag = false;
            for (int k = 0; k < inputs.Length; k++)
            {
                DType dtype = Gradients[k].DType;
                int size = dtype.SizeOf();
                byte[] expected;
                if (FindOnly)
                {
                    expected = inputs[k];   // read-only
                    for (int i = 0; i < Gradients[k].Length && !expectedFlag; i++)
                        expectedFlag = IsNonFinite(dtype, size == 4 ? BitConverter.ToUInt32(expected, i * 4) : BitConverter.ToUInt16(expected, i * 2));
                }
                else
                {
                    expected = Expected(dtype, inputs[k], Scale, out bool nonFinite);
                    expectedFlag |= nonFinite;
                }
                if (Differs(expected, CaseBytes.Bytes(tensors[k]), $"gradients[{k}] ({Gradients[k]})", size) is { } failure) return failure;
            }
            return flag == expectedFlag ? null : $"flag {flag}, reference {expectedFlag}";
        }
        finally
        {
            foreach (Tensor tensor in tensors) tensor.Dispose();
        }
    }

    /// <summary>
    /// The gradients on the device; each run unscales them in place by <see cref="Scale"/> and the next by its
    /// reciprocal, so repeated runs keep the values where they started (exactly, for a power of two and
    /// <see cref="GradientFill.Magnitudes"/>), never drifting into subnormals (slow on x86) or overflow.
    /// </summary>
    public PreparedCase Prepare(Device device)
    {
        byte[][] inputs = Inputs();
        Tensor[] tensors = [.. inputs.Select((b, k) => FromBytes(Gradients[k].DType, [Gradients[k].Length], device, b))];
        bool down = true;
        Action run = FindOnly
            ? () => Precision.FindNonFinite(tensors)
            : () =>
            {
                Precision.UnscaleAndCheck(tensors, down ? Scale : 1 / Scale);
                down = !down;
            };
        return new PreparedCase(run, tensors);
    }
}
