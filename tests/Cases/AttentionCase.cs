using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Cases.CaseBytes;

namespace NativeTensor.Cases;

/// <summary>
/// One <see cref="Attention"/> scenario: q [B, Hq, N, D], k and v [B, Hkv, M, D] of one dtype from a seed, a mask, and
/// either the forward (output and log-sum-exp into poisoned tensors) or the backward (dq, dk, dv from the reference's own
/// output and log-sum-exp, so the backward is judged alone). Every element is held to the bound derived from
/// <see cref="AttentionReference"/>'s magnitudes (<see cref="Tolerances.AttentionRoundings"/>); the inputs must come back
/// unchanged. <see cref="Logits"/> multiplies q, so large values make scores that overflow a naive exp.
/// </summary>
public sealed record AttentionCase(int Batch, int QueryHeads, int KvHeads, int Queries, int Keys, int HeadDim, bool Causal, int Window,
    DType DType, bool Backward, int Seed, float Logits = 1, float? Scale = null) : IOpCase
{
    public AttentionMask Mask => new(Causal, Window);

    public override string ToString() =>
        $"{(Backward ? "backward" : "forward")} q [{Batch}, {QueryHeads}, {Queries}, {HeadDim}] kv [{Batch}, {KvHeads}, {Keys}, {HeadDim}] {DType}" +
        $"{(Causal ? ", causal" : "")}{(Window > 0 ? $", window {Window}" : "")}{(Logits != 1 ? $", logits x{Logits:R}" : "")}{(Scale is float s ? $", scale {s:R}" : "")}, seed {Seed}";

    public string Op => Backward ? "attention.backward" : "attention.forward";

    public string Name => ToString();

    public string Standard => "every element within Tolerances.AttentionRoundings of AttentionReference's magnitudes";

    private AttentionReference.Geometry Geometry => new(Batch, QueryHeads, KvHeads, Queries, Keys, HeadDim, Mask, Scale ?? (float)(1.0 / Math.Sqrt(HeadDim)));

    private long QueryElements => (long)Batch * QueryHeads * Queries * HeadDim;

    private long KeyElements => (long)Batch * KvHeads * Keys * HeadDim;

    /// <summary>(query, key) pairs the mask lets through, over every head: what the products' work scales with.</summary>
    public long VisiblePairs
    {
        get
        {
            long pairs = 0;
            for (int i = 0; i < Queries; i++)
            {
                (int first, int last) = Geometry.Visible(i);
                pairs += Math.Max(0, last - first + 1);
            }
            return pairs * Batch * QueryHeads;
        }
    }

    /// <summary>
    /// Forward: q, k, v read and the output and log-sum-exp written once. Backward: dO, q, k, v, the output and the
    /// log-sum-exp read, dq, dk, dv written.
    /// </summary>
    public long MovedBytes => Backward
        ? (4 * QueryElements + 4 * KeyElements) * DType.SizeOf() + 4L * Batch * QueryHeads * Queries
        : (2 * QueryElements + 2 * KeyElements) * DType.SizeOf() + 4L * Batch * QueryHeads * Queries;

    /// <summary>
    /// 2 D flops per visible pair per product (the usual count, which ignores the softmax's exponentials): two products
    /// forward (q k^T, P v), five backward (the FlashAttention-2 count: q k^T again, dO v^T, P^T dO, dS k, dS^T q).
    /// </summary>
    public long Flops => (Backward ? 5 : 2) * 2L * HeadDim * VisiblePairs;

    /// <summary>The inputs, and what the reference says, computed once however many devices check the case.</summary>
    private Lazy<Truth> Expected => _truth ??= new(() => BuildTruth(withReference: true));

    private Lazy<Truth>? _truth;

    private sealed record Truth(byte[] Q, byte[] K, byte[] V, byte[] OutputGradient, byte[] Output, float[] LogSumExp,
        AttentionReference.Values[] Results);

    private Truth BuildTruth(bool withReference)
    {
        var random = new Random(Seed);
        byte[] q = AttentionData.Values(random, DType, QueryElements, Logits), k = AttentionData.Values(random, DType, KeyElements, 1);
        byte[] v = AttentionData.Values(random, DType, KeyElements, 1), dO = AttentionData.Values(random, DType, QueryElements, 1);
        if (!withReference) return new Truth(q, k, v, dO, [], [], []);
        double[] qs = LinalgReference.Values(q, DType), ks = LinalgReference.Values(k, DType), vs = LinalgReference.Values(v, DType);
        (AttentionReference.Values output, AttentionReference.Values lse) = AttentionReference.Forward(Geometry, qs, ks, vs);
        if (!Backward) return new Truth(q, k, v, dO, [], [], [output, lse]);
        // The backward is judged alone: it gets the reference's output, rounded to the dtype as a forward stores it, and the
        // reference's log-sum-exp rounded to Float32; the reference backward then uses that same rounded output.
        byte[] o = AttentionData.Rounded(output.Value, DType);
        float[] l = [.. lse.Value.Select(x => (float)x)];
        (AttentionReference.Values dq, AttentionReference.Values dk, AttentionReference.Values dv) =
            AttentionReference.Backward(Geometry, LinalgReference.Values(dO, DType), qs, ks, vs, LinalgReference.Values(o, DType));
        return new Truth(q, k, v, dO, o, l, [dq, dk, dv]);
    }

    public string? Check(Device device)
    {
        Truth truth = Expected.Value;
        using Tensor q = FromBytes(DType, [Batch, QueryHeads, Queries, HeadDim], device, truth.Q);
        using Tensor k = FromBytes(DType, [Batch, KvHeads, Keys, HeadDim], device, truth.K);
        using Tensor v = FromBytes(DType, [Batch, KvHeads, Keys, HeadDim], device, truth.V);
        double rounding = Tolerances.AttentionRoundings(HeadDim, Queries, Keys, QueryHeads / KvHeads);
        double weights = Tolerances.AttentionInputRounding(DType, device.Kind);
        double largest = new[] { truth.Q, truth.K, truth.V, truth.OutputGradient }.Max(x => LinalgReference.Values(x, DType).Select(Math.Abs).DefaultIfEmpty(0).Max());
        // Underflow, plus (CUDA Float16) subnormal weights: at most 2^-25 per weight times the operand it multiplies, over
        // the terms of one sum: M keys for an output or dq, N x group queries for dk and dv.
        double terms = Backward ? Math.Max(Keys, (double)Queries * (QueryHeads / KvHeads)) : Keys;
        double floor = Tolerances.AttentionUnderflow(HeadDim, Queries, Keys, QueryHeads / KvHeads, Geometry.Scale, largest)
            + Tolerances.AttentionInputRoundingFloor(DType, device.Kind) * terms * largest * Math.Max(1, Geometry.Scale * HeadDim * largest);
        string? inputs;
        if (!Backward)
        {
            using Tensor output = Poisoned(DType, [Batch, QueryHeads, Queries, HeadDim], device);
            using Tensor lse = Poisoned(DType.Float32, [Batch, QueryHeads, Queries], device);
            if (!ReferenceEquals(output, Attention.Forward(q, k, v, Mask, Scale, output, lse))) return "the output tensor passed in was not returned";
            inputs = Differs(truth.Q, Bytes(q), "q changed", DType.SizeOf()) ?? Differs(truth.K, Bytes(k), "k changed", DType.SizeOf())
                ?? Differs(truth.V, Bytes(v), "v changed", DType.SizeOf());
            return AttentionData.WithinBound("output", LinalgReference.Values(Bytes(output), DType), truth.Results[0], rounding, weights, floor, DType)
                ?? AttentionData.WithinBound("logSumExp", LinalgReference.Values(Bytes(lse), DType.Float32), truth.Results[1], rounding, 0, floor, DType.Float32)
                ?? inputs;
        }
        using Tensor dO = FromBytes(DType, [Batch, QueryHeads, Queries, HeadDim], device, truth.OutputGradient);
        using Tensor o = FromBytes(DType, [Batch, QueryHeads, Queries, HeadDim], device, truth.Output);
        using Tensor l = OnDevice(truth.LogSumExp, [Batch, QueryHeads, Queries], device);
        (Tensor dq, Tensor dk, Tensor dv) = Attention.Backward(dO, q, k, v, o, l, Mask, Scale);
        using (dq)
        using (dk)
        using (dv)
        {
            inputs = Differs(truth.Q, Bytes(q), "q changed", DType.SizeOf()) ?? Differs(truth.K, Bytes(k), "k changed", DType.SizeOf())
                ?? Differs(truth.V, Bytes(v), "v changed", DType.SizeOf()) ?? Differs(truth.OutputGradient, Bytes(dO), "dO changed", DType.SizeOf())
                ?? Differs(truth.Output, Bytes(o), "output changed", DType.SizeOf());
            return AttentionData.WithinBound("dq", LinalgReference.Values(Bytes(dq), DType), truth.Results[0], rounding, weights, floor, DType)
                ?? AttentionData.WithinBound("dk", LinalgReference.Values(Bytes(dk), DType), truth.Results[1], rounding, weights, floor, DType)
                ?? AttentionData.WithinBound("dv", LinalgReference.Values(Bytes(dv), DType), truth.Results[2], rounding, weights, floor, DType)
                ?? inputs;
        }
    }

    /// <summary>The inputs on the device (no reference: perf's timed shapes would take long to compute it) and the op as a call.</summary>
    public PreparedCase Prepare(Device device)
    {
        Truth inputs = BuildTruth(withReference: false);
        Tensor q = FromBytes(DType, [Batch, QueryHeads, Queries, HeadDim], device, inputs.Q);
        Tensor k = FromBytes(DType, [Batch, KvHeads, Keys, HeadDim], device, inputs.K);
        Tensor v = FromBytes(DType, [Batch, KvHeads, Keys, HeadDim], device, inputs.V);
        Tensor output = Tensor.Empty(DType, [Batch, QueryHeads, Queries, HeadDim], device);
        Tensor lse = Tensor.Empty(DType.Float32, [Batch, QueryHeads, Queries], device);
        Attention.Forward(q, k, v, Mask, Scale, output, lse);
        if (!Backward) return new PreparedCase(() => Attention.Forward(q, k, v, Mask, Scale, output, lse), q, k, v, output, lse);
        Tensor dO = FromBytes(DType, [Batch, QueryHeads, Queries, HeadDim], device, inputs.OutputGradient);
        return new PreparedCase(() =>
        {
            (Tensor dq, Tensor dk, Tensor dv) = Attention.Backward(dO, q, k, v, output, lse, Mask, Scale);
            dq.Dispose();
            dk.Dispose();
            dv.Dispose();
        }, q, k, v, output, lse, dO);
    }
}

/// <summary>Inputs and checks the attention suites share.</summary>
public static class AttentionData
{
    /// <summary>
    /// Values of <paramref name="dtype"/> as its bytes, uniform in [-1, 1) times <paramref name="scale"/>, one in sixteen
    /// an exact zero: scores and weights spread over several binades, nothing overflows unless the scale asks for it.
    /// </summary>
    public static byte[] Values(Random random, DType dtype, long count, float scale)
    {
        var values = new double[count];
        for (long i = 0; i < count; i++) values[i] = random.Next(16) == 0 ? 0 : (random.NextDouble() * 2 - 1) * scale;
        return Rounded(values, dtype);
    }

    /// <summary>Doubles rounded to <paramref name="dtype"/> (to binary32, then as <see cref="PrecisionReference.Convert"/> does), as bytes.</summary>
    public static byte[] Rounded(double[] values, DType dtype)
    {
        int size = dtype.SizeOf();
        var bytes = new byte[values.LongLength * size];
        for (long i = 0; i < values.LongLength; i++)
        {
            ulong bits = PrecisionReference.Convert(BitConverter.SingleToUInt32Bits((float)values[i]), DType.Float32, dtype);
            BitConverter.GetBytes(bits).AsSpan(0, size).CopyTo(bytes.AsSpan((int)(i * size)));
        }
        return bytes;
    }

    /// <summary>
    /// Null when every element is within <c>R u μ + T μ + w |value| + a + f</c> of the reference (R = <paramref name="rounding"/>,
    /// T = <paramref name="weights"/>, (w, a) = <see cref="Tolerances.AttentionResultRounding"/> of the stored dtype, f =
    /// <paramref name="floor"/>, <see cref="Tolerances.AttentionUnderflow"/>); a
    /// non-finite reference (NaN, or the -inf log-sum-exp of a query that sees no key) must be matched exactly in kind.
    /// </summary>
    public static string? WithinBound(string what, double[] actual, AttentionReference.Values expected, double rounding, double weights, double floor,
        DType stored)
    {
        if (actual.Length != expected.Value.Length) return $"{what}: {actual.Length} elements, the reference has {expected.Value.Length}";
        (double relative, double absolute) = Tolerances.AttentionResultRounding(stored);
        for (int e = 0; e < actual.Length; e++)
        {
            double exact = expected.Value[e], got = actual[e];
            if (!double.IsFinite(exact))
            {
                if (double.IsNaN(exact) ? !double.IsNaN(got) : got != exact) return $"{what}[{e}] = {got:R}, reference {exact:R}";
                continue;
            }
            double allowed = (rounding * Tolerances.SingleUnitRoundoff + weights) * expected.Magnitude[e] + relative * Math.Abs(exact) + absolute + floor;
            if (!(Math.Abs(got - exact) <= allowed))
                return $"{what}[{e}] = {got:R}, reference {exact:R}, |error| {Math.Abs(got - exact):E3} > bound {allowed:E3}";
        }
        return null;
    }
}
