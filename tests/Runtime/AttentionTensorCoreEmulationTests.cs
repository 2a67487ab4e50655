using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using NativeTensor.Runtime.Kernels;
using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// The tensor-core kernels of <c>kernels/cuda/attention.cu</c> (forward, dq, dk/dv) on a machine without a GPU: its expanded source is built
/// as host C++ with <c>KernelCompile/warp_emulation.h</c> (each thread a std::thread; mma.sync, ldmatrix and the
/// shuffles done by the warp's 32 threads meeting and reading each other's operands in the PTX ISA's fragment layouts)
/// and launched as the host launches it, then compared with <see cref="AttentionReference"/> within the tolerance the
/// path's extra roundings allow. What this proves: the kernels' indexing, band and tile skipping, masking, online
/// softmax, ring addressing, grouped heads (dk and dv summed over a group's query heads), padding of D, the exact paths
/// of poisoned tiles and the stores. What it cannot: the instructions' layouts
/// themselves (taken from the ISA into warp_emulation.h and warp_mma.h alike), which only a GPU run of the CUDA parity
/// suite checks.
/// </summary>
public sealed class AttentionTensorCoreEmulationTests
{
    /// <summary>NATIVETENSOR_REQUIRE's word: the clang of the CUDA compile tests builds the emulation too.</summary>
    private const string Requirement = "clang-cuda";

    private static readonly Lazy<string> Program = new(Build, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// One call: dtype, B, Hq, Hkv, N, M, D, causal, window, key rows and the first key's row (a ring when rows &gt; M or
    /// first &gt; 0), and NaNs written into k or v at storage element indices (keys some queries see and others do not).
    /// </summary>
    public sealed record Case(DType DType, int Batch, int QueryHeads, int KvHeads, int Queries, int Keys, int HeadDim, bool Causal, int Window,
        int KeyRows, int KeyFirst, long[]? NaNInKeys = null, long[]? NaNInValues = null)
    {
        public override string ToString() =>
            $"{DType} B{Batch} H{QueryHeads}/{KvHeads} N{Queries} M{Keys} D{HeadDim}{(Causal ? " causal" : "")}{(Window > 0 ? $" window {Window}" : "")}" +
            (KeyRows != Keys || KeyFirst != 0 ? $" ring {KeyFirst}/{KeyRows}" : "") +
            (NaNInKeys is { } k ? $" NaN in k at {string.Join(", ", k)}" : "") + (NaNInValues is { } v ? $" NaN in v at {string.Join(", ", v)}" : "");
    }

    /// <summary>
    /// Every padded head dimension (and D below, at and between them, odd ones reading element by element), query counts
    /// off the 64-row block and below a warp, N &gt; M (queries that see no key), causal and windowed bands narrower and
    /// wider than a key tile, grouped and multi-query heads, and rings that wrap.
    /// </summary>
    private static readonly Case[] Cases =
    [
        new(DType.BFloat16, 1, 1, 1, 16, 16, 32, false, 0, 16, 0),
        new(DType.BFloat16, 1, 1, 1, 100, 100, 64, true, 0, 100, 0),
        new(DType.Float16, 1, 1, 1, 100, 100, 64, true, 0, 100, 0),
        new(DType.BFloat16, 2, 4, 2, 70, 130, 40, true, 0, 130, 0),
        new(DType.Float16, 1, 2, 1, 33, 200, 7, false, 0, 200, 0),
        new(DType.BFloat16, 1, 1, 1, 130, 130, 128, true, 17, 130, 0),
        new(DType.Float16, 1, 3, 1, 65, 90, 100, false, 20, 90, 0),
        new(DType.BFloat16, 1, 2, 2, 80, 50, 16, true, 0, 50, 0),
        new(DType.BFloat16, 1, 1, 1, 20, 60, 256, true, 0, 97, 70),
        new(DType.Float16, 1, 1, 1, 5, 40, 200, false, 0, 41, 3),
        new(DType.BFloat16, 1, 1, 1, 1, 300, 8, true, 0, 300, 0),
        new(DType.Float16, 1, 1, 1, 64, 64, 1, true, 5, 64, 0),
        new(DType.Float16, 1, 1, 1, 200, 260, 96, true, 64, 260, 0),
        new(DType.BFloat16, 1, 2, 1, 48, 150, 160, true, 33, 150, 0),
        // A NaN reaches exactly the queries that see its key: causal rows below it and windows past it must stay clean
        // though the key shares their tiles (the exact path of a poisoned tile), and a NaN key poisons whole rows.
        new(DType.BFloat16, 1, 1, 1, 100, 100, 64, true, 0, 100, 0, NaNInValues: [50 * 64 + 3, 99 * 64 + 10]),
        new(DType.Float16, 1, 1, 1, 100, 100, 40, true, 16, 100, 0, NaNInKeys: [70 * 40 + 5], NaNInValues: [30 * 40 + 3]),
        new(DType.BFloat16, 1, 2, 1, 40, 90, 200, true, 8, 97, 60, NaNInValues: [(60 + 70) % 97 * 200 + 199]),
    ];

    public static TheoryData<int> CaseIndices() => [.. Enumerable.Range(0, Cases.Length)];

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void The_tensor_core_forward_under_warp_emulation_matches_the_reference(int index) => Check(Cases[index], 1000 + index);

    /// <summary>N or M as the parity suite draws them: 1, 1..40 or 60..140 (across the 64-row blocks).</summary>
    private static Gen<int> Length =>
        from kind in Gen.Choose(0, 9)
        from n in kind == 0 ? Gen.Constant(1) : kind <= 2 ? Gen.Choose(60, 140) : Gen.Choose(1, 40)
        select n;

    /// <summary>D: 1..96, the padded sizes up to 128, the smallest odd ones and the two largest the kernels take.</summary>
    private static Gen<int> HeadDim(int secondLargest, int largest) =>
        from kind in Gen.Choose(0, 5)
        from d in kind == 0 ? Gen.Elements(1, 2, 3, 7, secondLargest, largest) : kind == 1 ? Gen.Elements(16, 32, 64, 128) : Gen.Choose(1, 96)
        select d;

    /// <summary>Random shapes as the parity suite draws them (lengths 1, 1..40, 60..140; D 1..96 and the edges; windows from 1 to past N + M), with rings.</summary>
    [Fact]
    public void Random_shapes_under_warp_emulation_match_the_reference()
    {
        _ = Program.Value;   // skips (or fails) here when there is no compiler, not inside the property
        Gen<(Case, int)> cases =
            from n in Length
            from m in Length
            from d in HeadDim(255, 256)
            from kvHeads in Gen.Choose(1, 2)
            from heads in Gen.Elements(1, 2, 3)
            from causal in Gen.Elements(false, true)
            from window in Gen.Elements(0, 0, 1, 2, 5, 17, n, n + m + 3)
            from dtype in Gen.Elements(DType.BFloat16, DType.Float16)
            from spare in Gen.Elements(0, 0, 1, 37)
            from first in Gen.Choose(0, m + spare - 1)
            from ring in Gen.Elements(false, true)
            from seed in Gen.Choose(0, int.MaxValue)
            select (new Case(dtype, 1, kvHeads * heads, kvHeads, n, m, d, causal, window, m + spare, ring ? first : 0), seed);
        Prop.ForAll(cases.ToArbitrary(), x => Check(x.Item1, x.Item2)).Check(Config.QuickThrowOnFailure.WithMaxTest(12));
    }

    private static void Check(Case c, int seed)
    {
        string program = Program.Value;
        var random = new Random(seed);
        ushort[] q = Values(random, (long)c.Batch * c.QueryHeads * c.Queries * c.HeadDim, c.DType);
        ushort[] k = Values(random, (long)c.Batch * c.KvHeads * c.KeyRows * c.HeadDim, c.DType);
        ushort[] v = Values(random, k.Length, c.DType);
        ushort nan = c.DType == DType.BFloat16 ? BFloat16.NaN.Bits : BitConverter.HalfToUInt16Bits(Half.NaN);
        foreach (long at in c.NaNInKeys ?? []) k[at] = nan;
        foreach (long at in c.NaNInValues ?? []) v[at] = nan;
        float scale = (float)(1.0 / Math.Sqrt(c.HeadDim));
        (ushort[] output, float[] lse) = Run(program, c, scale, q, k, v);

        var geometry = new AttentionReference.Geometry(c.Batch, c.QueryHeads, c.KvHeads, c.Queries, c.Keys, c.HeadDim,
            new AttentionMask(c.Causal, c.Window), scale);
        (AttentionReference.Values expected, AttentionReference.Values expectedLse) =
            AttentionReference.Forward(geometry, Widen(q, c.DType), Dense(k, c), Dense(v, c));

        // The parity suite's bound for CUDA (the device this kernel runs on), plus Float16's subnormal weights over at most
        // M visible keys of magnitude at most Spread.
        double rounds = Tolerances.AttentionRoundings(c.HeadDim, c.Queries, c.Keys, c.QueryHeads / c.KvHeads) * Tolerances.SingleUnitRoundoff;
        double weight = Tolerances.AttentionInputRounding(c.DType, DeviceKind.Cuda);
        double floor = Tolerances.AttentionInputRoundingFloor(c.DType, DeviceKind.Cuda) * c.Keys * Spread;
        (double store, double storeFloor) = Tolerances.AttentionResultRounding(c.DType);
        for (long row = 0; row < lse.Length; row++)
        {
            double l = expectedLse.Value[row];
            if (double.IsNegativeInfinity(l))
            {
                Assert.True(float.IsNegativeInfinity(lse[row]), $"{c}: row {row} sees no key, but its log-sum-exp is {lse[row]}");
                for (long e = row * c.HeadDim; e < (row + 1) * c.HeadDim; e++)
                    Assert.True(output[e] == 0, $"{c}: row {row} sees no key, but output[{e}] has bits 0x{output[e]:X4}");
                continue;
            }
            if (double.IsNaN(l))
            {
                Assert.True(float.IsNaN(lse[row]), $"{c}: row {row} sees a NaN key, but its log-sum-exp is {lse[row]}");
                for (long e = row * c.HeadDim; e < (row + 1) * c.HeadDim; e++)
                    Assert.True(double.IsNaN(Widen(output[e], c.DType)), $"{c}: row {row} sees a NaN key, but output[{e}] is {Widen(output[e], c.DType)}");
                continue;
            }
            Assert.True(Math.Abs(lse[row] - l) <= rounds * expectedLse.Magnitude[row],
                $"{c}: lse[{row}] = {lse[row]}, reference {l}, allowed {rounds * expectedLse.Magnitude[row]:E3}");
            for (long e = row * c.HeadDim; e < (row + 1) * c.HeadDim; e++)
            {
                double value = Widen(output[e], c.DType), reference = expected.Value[e];
                if (double.IsNaN(reference) || double.IsNaN(value))
                {
                    Assert.True(double.IsNaN(reference) && double.IsNaN(value), $"{c}: output[{e}] = {value}, reference {reference}");
                    continue;
                }
                double error = (rounds + weight) * expected.Magnitude[e] + floor;
                double allowed = error + store * (Math.Abs(reference) + error) + storeFloor;
                Assert.True(Math.Abs(value - reference) <= allowed,
                    $"{c}: output[{e}] (row {row}, column {e - row * c.HeadDim}) = {value}, reference {reference}, allowed {allowed:E3}");
            }
        }
    }

    /// <summary>
    /// Causal with window 1 (the parity suite's scene): a query that sees one key has weight exactly 1, and the other keys
    /// of its tiles weight +0, so its output must be that value row bit for bit; the first N - M queries see none.
    /// </summary>
    [Theory]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float16)]
    public void One_visible_key_copies_its_value_bit_for_bit_under_warp_emulation(DType dtype)
    {
        string program = Program.Value;
        var c = new Case(dtype, 1, 1, 1, 40, 25, 19, true, 1, 25, 0);
        var random = new Random(8);
        ushort[] q = Values(random, c.Queries * c.HeadDim, dtype), k = Values(random, c.Keys * c.HeadDim, dtype);
        ushort[] v = Values(random, c.Keys * c.HeadDim, dtype);
        (ushort[] output, float[] lse) = Run(program, c, (float)(1 / Math.Sqrt(c.HeadDim)), q, k, v);
        int empty = c.Queries - c.Keys;
        Assert.All(output[..(empty * c.HeadDim)], bits => Assert.Equal(0, bits));
        Assert.Equal(v, output[(empty * c.HeadDim)..]);
        Assert.All(lse[..empty], x => Assert.Equal(float.NegativeInfinity, x));
        Assert.All(lse[empty..], x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void The_host_picks_the_smallest_padded_head_dimension_and_refuses_what_it_has_no_kernel_for()
    {
        Assert.Equal("attention_forward_bf16_d32", AttentionTensorCoreKernels.Forward(DType.BFloat16, 1)!.Entry);
        Assert.Equal("attention_forward_f16_d64", AttentionTensorCoreKernels.Forward(DType.Float16, 33)!.Entry);
        Assert.Equal("attention_forward_bf16_d128", AttentionTensorCoreKernels.Forward(DType.BFloat16, 128)!.Entry);
        Assert.Equal("attention_forward_f16_d192", AttentionTensorCoreKernels.Forward(DType.Float16, 129)!.Entry);
        Assert.Equal("attention_forward_bf16_d256", AttentionTensorCoreKernels.Forward(DType.BFloat16, Attention.MaxHeadDim)!.Entry);
        Assert.Null(AttentionTensorCoreKernels.Forward(DType.Float32, 64));
        Assert.Null(AttentionTensorCoreKernels.Forward(DType.BFloat16, Attention.MaxHeadDim + 1));
        Assert.All(AttentionTensorCoreKernels.All, k => Assert.Equal(AttentionTensorCoreKernels.GroupThreads, k.GroupThreads));
    }

    /// <summary>
    /// One backward: dtype, B, Hq, Hkv, N, M, D (up to 128: larger runs the portable kernels), causal, window, and NaNs
    /// written into q, k or dO at element indices.
    /// </summary>
    public sealed record BackwardCase(DType DType, int Batch, int QueryHeads, int KvHeads, int Queries, int Keys, int HeadDim, bool Causal,
        int Window, long[]? NaNInQueries = null, long[]? NaNInKeys = null, long[]? NaNInGradients = null)
    {
        public override string ToString() =>
            $"{DType} B{Batch} H{QueryHeads}/{KvHeads} N{Queries} M{Keys} D{HeadDim}{(Causal ? " causal" : "")}{(Window > 0 ? $" window {Window}" : "")}" +
            (NaNInQueries is { } q ? $" NaN in q at {string.Join(", ", q)}" : "") + (NaNInKeys is { } k ? $" NaN in k at {string.Join(", ", k)}" : "") +
            (NaNInGradients is { } g ? $" NaN in dO at {string.Join(", ", g)}" : "");
    }

    /// <summary>
    /// Every padded D of the backward (and D between them), N and M off the 64-row blocks and the 16- or 32-query tiles,
    /// N &gt; M and N &lt; M, causal and windowed bands narrower and wider than a tile, grouped heads (dk and dv summed over
    /// three query heads), and NaNs that reach exactly the pairs that see them: a NaN key (dq's exact path) and a NaN
    /// query or output gradient (dk/dv's) sharing tiles with pairs that must stay clean.
    /// </summary>
    private static readonly BackwardCase[] BackwardCases =
    [
        new(DType.BFloat16, 1, 1, 1, 16, 16, 32, false, 0),
        new(DType.BFloat16, 1, 1, 1, 100, 100, 64, true, 0),
        new(DType.Float16, 1, 1, 1, 100, 100, 64, true, 0),
        new(DType.BFloat16, 2, 4, 2, 70, 130, 40, true, 0),
        new(DType.Float16, 1, 3, 1, 33, 200, 7, false, 0),
        new(DType.BFloat16, 1, 1, 1, 130, 130, 128, true, 17),
        new(DType.Float16, 1, 3, 1, 65, 90, 100, false, 20),
        new(DType.BFloat16, 1, 2, 2, 80, 50, 16, true, 0),
        new(DType.BFloat16, 1, 1, 1, 1, 300, 8, true, 0),
        new(DType.Float16, 1, 1, 1, 64, 64, 1, true, 5),
        new(DType.Float16, 1, 2, 1, 150, 97, 96, true, 40),
        new(DType.BFloat16, 1, 1, 1, 100, 100, 64, true, 0, NaNInKeys: [50 * 64 + 3]),
        new(DType.Float16, 1, 1, 1, 100, 100, 40, true, 16, NaNInQueries: [70 * 40 + 5], NaNInGradients: [30 * 40 + 3]),
        new(DType.BFloat16, 1, 2, 1, 40, 90, 72, true, 8, NaNInQueries: [(40 + 20) * 72 + 71], NaNInKeys: [80 * 72]),
    ];

    public static TheoryData<int> BackwardCaseIndices() => [.. Enumerable.Range(0, BackwardCases.Length)];

    [Theory]
    [MemberData(nameof(BackwardCaseIndices))]
    public void The_tensor_core_backward_under_warp_emulation_matches_the_reference(int index) => CheckBackward(BackwardCases[index], 2000 + index);

    /// <summary>Random shapes as the parity suite draws them, D up to 128.</summary>
    [Fact]
    public void Random_backward_shapes_under_warp_emulation_match_the_reference()
    {
        _ = Program.Value;
        Gen<(BackwardCase, int)> cases =
            from n in Length
            from m in Length
            from d in HeadDim(127, 128)
            from kvHeads in Gen.Choose(1, 2)
            from heads in Gen.Elements(1, 2, 3)
            from causal in Gen.Elements(false, true)
            from window in Gen.Elements(0, 0, 1, 2, 5, 17, n, n + m + 3)
            from dtype in Gen.Elements(DType.BFloat16, DType.Float16)
            from seed in Gen.Choose(0, int.MaxValue)
            select (new BackwardCase(dtype, 1, kvHeads * heads, kvHeads, n, m, d, causal, window), seed);
        Prop.ForAll(cases.ToArbitrary(), x => CheckBackward(x.Item1, x.Item2)).Check(Config.QuickThrowOnFailure.WithMaxTest(10));
    }

    /// <summary>
    /// Runs dq and dk/dv as the host would, after the portable delta (here dO · O in binary32, one FMA chain as that
    /// kernel does), on the reference's output and log-sum-exp rounded as a forward stores them (as the parity suite
    /// judges the backward alone), and holds every element to the parity suite's bound for CUDA.
    /// </summary>
    private static void CheckBackward(BackwardCase c, int seed)
    {
        string program = Program.Value;
        var random = new Random(seed);
        long queryElements = (long)c.Batch * c.QueryHeads * c.Queries * c.HeadDim, keyElements = (long)c.Batch * c.KvHeads * c.Keys * c.HeadDim;
        ushort[] q = Values(random, queryElements, c.DType), k = Values(random, keyElements, c.DType), v = Values(random, keyElements, c.DType);
        ushort[] dO = Values(random, queryElements, c.DType);
        ushort nan = c.DType == DType.BFloat16 ? BFloat16.NaN.Bits : BitConverter.HalfToUInt16Bits(Half.NaN);
        foreach (long at in c.NaNInQueries ?? []) q[at] = nan;
        foreach (long at in c.NaNInKeys ?? []) k[at] = nan;
        foreach (long at in c.NaNInGradients ?? []) dO[at] = nan;
        float scale = (float)(1.0 / Math.Sqrt(c.HeadDim));
        var geometry = new AttentionReference.Geometry(c.Batch, c.QueryHeads, c.KvHeads, c.Queries, c.Keys, c.HeadDim,
            new AttentionMask(c.Causal, c.Window), scale);
        double[] qs = Widen(q, c.DType), ks = Widen(k, c.DType), vs = Widen(v, c.DType), dOs = Widen(dO, c.DType);
        (AttentionReference.Values output, AttentionReference.Values lse) = AttentionReference.Forward(geometry, qs, ks, vs);
        ushort[] o = [.. output.Value.Select(x => Narrow((float)x, c.DType))];
        float[] l = [.. lse.Value.Select(x => (float)x)];
        var delta = new float[l.Length];
        for (long row = 0; row < delta.Length; row++)
        {
            float sum = 0;
            for (long e = row * c.HeadDim; e < (row + 1) * c.HeadDim; e++) sum = MathF.FusedMultiplyAdd((float)dOs[e], (float)Widen(o[e], c.DType), sum);
            delta[row] = sum;
        }
        (AttentionReference.Values dq, AttentionReference.Values dk, AttentionReference.Values dv) =
            AttentionReference.Backward(geometry, dOs, qs, ks, vs, Widen(o, c.DType));
        (ushort[] gotDq, ushort[] gotDk, ushort[] gotDv) = RunBackward(program, c, scale, q, k, v, dO, l, delta);

        int group = c.QueryHeads / c.KvHeads;
        double rounding = Tolerances.AttentionRoundings(c.HeadDim, c.Queries, c.Keys, group);
        double weights = Tolerances.AttentionInputRounding(c.DType, DeviceKind.Cuda);
        double floor = Tolerances.AttentionUnderflow(c.HeadDim, c.Queries, c.Keys, group, scale, Spread)
            + Tolerances.AttentionInputRoundingFloor(c.DType, DeviceKind.Cuda) * Math.Max(c.Keys, (double)c.Queries * group) * Spread
              * Math.Max(1, scale * c.HeadDim * Spread);
        string? failure = AttentionData.WithinBound("dq", Widen(gotDq, c.DType), dq, rounding, weights, floor, c.DType)
            ?? AttentionData.WithinBound("dk", Widen(gotDk, c.DType), dk, rounding, weights, floor, c.DType)
            ?? AttentionData.WithinBound("dv", Widen(gotDv, c.DType), dv, rounding, weights, floor, c.DType);
        Assert.True(failure is null, $"{c}: {failure}");
    }

    [Fact]
    public void The_backward_takes_tensor_cores_up_to_D_128_and_leaves_the_rest_to_the_portable_kernels()
    {
        Assert.Equal("attention_dq_bf16_d32", AttentionTensorCoreKernels.Dq(DType.BFloat16, 1)!.Entry);
        Assert.Equal("attention_dkdv_f16_d64", AttentionTensorCoreKernels.DkDv(DType.Float16, 33)!.Entry);
        Assert.Equal("attention_dq_f16_d128", AttentionTensorCoreKernels.Dq(DType.Float16, 128)!.Entry);
        Assert.Null(AttentionTensorCoreKernels.Dq(DType.BFloat16, 129));
        Assert.Null(AttentionTensorCoreKernels.DkDv(DType.Float16, 129));
        Assert.Null(AttentionTensorCoreKernels.DkDv(DType.Float32, 64));
    }

    private static ushort Narrow(float x, DType dtype) =>
        dtype == DType.BFloat16 ? BFloat16.FromSingle(x).Bits : BitConverter.HalfToUInt16Bits((Half)x);

    /// <summary>Inputs are uniform in [-Spread, Spread), rounded to the dtype.</summary>
    private const double Spread = 2;

    private static ushort[] Values(Random random, long count, DType dtype)
    {
        var values = new ushort[count];
        for (long i = 0; i < count; i++)
        {
            float x = (float)((random.NextDouble() * 2 - 1) * Spread);
            values[i] = dtype == DType.BFloat16 ? BFloat16.FromSingle(x).Bits : BitConverter.HalfToUInt16Bits((Half)x);
        }
        return values;
    }

    private static double Widen(ushort bits, DType dtype) =>
        dtype == DType.BFloat16 ? BFloat16.FromBits(bits).ToSingle() : (double)BitConverter.UInt16BitsToHalf(bits);

    private static double[] Widen(ushort[] bits, DType dtype) => [.. bits.Select(b => Widen(b, dtype))];

    /// <summary>k or v as the reference reads them, [B, Hkv, M, D]: key j of a head from its storage row (first + j) mod rows.</summary>
    private static double[] Dense(ushort[] stored, Case c)
    {
        var dense = new double[(long)c.Batch * c.KvHeads * c.Keys * c.HeadDim];
        for (long head = 0; head < (long)c.Batch * c.KvHeads; head++)
            for (int j = 0; j < c.Keys; j++)
            {
                long from = (head * c.KeyRows + (c.KeyFirst + j) % c.KeyRows) * c.HeadDim, to = (head * c.Keys + j) * c.HeadDim;
                for (int d = 0; d < c.HeadDim; d++) dense[to + d] = Widen(stored[from + d], c.DType);
            }
        return dense;
    }

    /// <summary>Runs the emulated kernel with the launch the host would make (see warp_emulation_main.cpp for the file layout).</summary>
    private static (ushort[] Output, float[] Lse) Run(string program, Case c, float scale, ushort[] q, ushort[] k, ushort[] v)
    {
        var shape = new AttentionShape(c.DType, c.Batch, c.QueryHeads, c.KvHeads, c.Queries, c.Keys, c.HeadDim, c.Causal, c.Window, scale,
            c.KeyRows, c.KeyFirst);
        ushort[] output = [];
        float[] lse = [];
        Execute(program, "forward", AttentionTensorCoreKernels.Forward(c.DType, c.HeadDim)!, shape, logSumExp: true,
            writer =>
            {
                foreach (ushort[] array in new[] { q, k, v })
                    foreach (ushort bits in array) writer.Write(bits);
            },
            reader => (output, lse) = (Read16(reader, q.Length), ReadSingles(reader, shape.QueryRows)));
        return (output, lse);
    }

    /// <summary>Runs the emulated dq and dk/dv with the launches the host would make (see warp_emulation_main.cpp).</summary>
    private static (ushort[] Dq, ushort[] Dk, ushort[] Dv) RunBackward(string program, BackwardCase c, float scale, ushort[] q, ushort[] k,
        ushort[] v, ushort[] dO, float[] lse, float[] delta)
    {
        var shape = new AttentionShape(c.DType, c.Batch, c.QueryHeads, c.KvHeads, c.Queries, c.Keys, c.HeadDim, c.Causal, c.Window, scale,
            c.Keys, 0);
        (ushort[] Dq, ushort[] Dk, ushort[] Dv) result = ([], [], []);
        Execute(program, "backward", AttentionTensorCoreKernels.Dq(c.DType, c.HeadDim)!, shape, logSumExp: false,
            writer =>
            {
                foreach (ushort[] array in new[] { q, k, v, dO })
                    foreach (ushort bits in array) writer.Write(bits);
                foreach (float[] array in new[] { lse, delta })
                    foreach (float x in array) writer.Write(x);
            },
            reader => result = (Read16(reader, q.Length), Read16(reader, k.Length), Read16(reader, v.Length)));
        return result;
    }

    /// <summary>
    /// One run of the emulation program in <paramref name="mode"/>: the header (geometry, the padded D of
    /// <paramref name="kernel"/>, the groups the host would launch) and the scale, then what <paramref name="inputs"/>
    /// writes; <paramref name="outputs"/> reads the results (see warp_emulation_main.cpp for the layout).
    /// </summary>
    private static void Execute(string program, string mode, DeviceKernel kernel, in AttentionShape shape, bool logSumExp,
        Action<BinaryWriter> inputs, Action<BinaryReader> outputs)
    {
        int padded = int.Parse(kernel.Entry[(kernel.Entry.LastIndexOf("_d", StringComparison.Ordinal) + 2)..]);
        string folder = Directory.CreateTempSubdirectory("nativetensor-warp-emulation-").FullName;
        try
        {
            string input = Path.Combine(folder, "in.bin"), output = Path.Combine(folder, "out.bin");
            using (var writer = new BinaryWriter(File.Create(input)))
            {
                foreach (int value in new[] { shape.DType == DType.BFloat16 ? 0 : 1, shape.Batch, shape.QueryHeads, shape.KvHeads, shape.Queries,
                    shape.Keys, shape.HeadDim, (int)AttentionTensorCoreKernels.Flags(shape.Causal, logSumExp), shape.Window, shape.KeyRows,
                    shape.KeyFirst, padded, checked((int)AttentionTensorCoreKernels.Groups(shape)),
                    checked((int)AttentionTensorCoreKernels.KeyGroups(shape)) })
                    writer.Write(value);
                writer.Write(shape.Scale);
                inputs(writer);
            }
            ChildProcess.Check(program, [mode, input, output]);
            using var reader = new BinaryReader(File.OpenRead(output));
            outputs(reader);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static ushort[] Read16(BinaryReader reader, long count)
    {
        var result = new ushort[count];
        for (long i = 0; i < count; i++) result[i] = reader.ReadUInt16();
        return result;
    }

    private static float[] ReadSingles(BinaryReader reader, long count)
    {
        var result = new float[count];
        for (long i = 0; i < count; i++) result[i] = reader.ReadSingle();
        return result;
    }

    /// <summary>Builds the emulation program once: the kernel's expanded source, included by warp_emulation_main.cpp.</summary>
    private static string Build()
    {
        string clang = KernelCudaCompileTests.ClangPath
            ?? throw Backends.Missing(Requirement, "no clang on PATH to build the warp emulation (clang-15 comes with pocl-opencl-icd)");
        string folder = Directory.CreateTempSubdirectory("nativetensor-warp-emulation-build-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(folder, recursive: true);
        string source = Path.Combine(folder, "attention.cu");
        File.WriteAllText(source, KernelSources.Get(AttentionTensorCoreKernels.Source));
        string here = Path.Combine(AppContext.BaseDirectory, "Runtime", "KernelCompile");
        string program = Path.Combine(folder, "attention-emulated");
        ChildProcess.Check(clang, ["-x", "c++", "-std=c++20", "-O2", "-pthread", "-Wall", "-Werror", "-Wno-unknown-pragmas",
            "-include", Path.Combine(here, "warp_emulation.h"), $"-DNT_KERNEL_SOURCE=\"{source}\"",
            Path.Combine(here, "warp_emulation_main.cpp"), "-lstdc++", "-lm", "-o", program]);
        return program;
    }
}
