using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// Every rule <see cref="Attention"/> enforces: each bad argument gets its exception, naming the argument, before anything
/// is written (the output and log-sum-exp keep their poison). Validation happens before dispatch, so the CPU suffices.
/// </summary>
public sealed class AttentionBadInputTests
{
    private static Tensor Floats(DType dtype, long[] shape, Device? device = null) =>
        FromBytes(dtype, shape, device ?? Device.Cpu, AttentionData.Values(new Random(shape.Length), dtype, shape.Aggregate(1L, (x, y) => x * y), 1));

    /// <summary>q [2, 4, 5, 8], k and v [2, 2, 6, 8] Float32; a poisoned output and log-sum-exp.</summary>
    private sealed class Set : IDisposable
    {
        public readonly Tensor Q = Floats(DType.Float32, [2, 4, 5, 8]), K = Floats(DType.Float32, [2, 2, 6, 8]), V = Floats(DType.Float32, [2, 2, 6, 8]);
        public readonly Tensor Output = Poisoned(DType.Float32, [2, 4, 5, 8], Device.Cpu), Lse = Poisoned(DType.Float32, [2, 4, 5], Device.Cpu);

        public void Untouched()
        {
            Assert.True(Bytes(Output).AsSpan().IndexOfAnyExcept(Poison) < 0, "the output was written");
            Assert.True(Bytes(Lse).AsSpan().IndexOfAnyExcept(Poison) < 0, "the log-sum-exp was written");
        }

        public void Dispose()
        {
            foreach (Tensor t in new[] { Q, K, V, Output, Lse }) t.Dispose();
        }
    }

    private static void Refused<TException>(string argument, Func<Set, object> call) where TException : ArgumentException
    {
        using var set = new Set();
        TException e = Assert.Throws<TException>(() => call(set));
        Assert.Equal(argument, e.ParamName);
        set.Untouched();
    }

    public static TheoryData<string> Rules => ["rank", "dtype", "device", "batch", "headDim", "kvShape", "groups", "zeroHeads", "tooWide", "integers"];

    /// <summary>One rule of q, k and v each, named by the argument it blames.</summary>
    [Theory]
    [MemberData(nameof(Rules))]
    public void Inputs_that_break_a_rule_are_refused_with_nothing_written(string rule)
    {
        using Tensor rank3 = Floats(DType.Float32, [2, 6, 8]);
        using Tensor half = Floats(DType.Float16, [2, 2, 6, 8]);
        using Tensor elsewhere = Floats(DType.Float32, [2, 2, 6, 8], Backends.CpuScalar);
        using Tensor batch3 = Floats(DType.Float32, [3, 2, 6, 8]);
        using Tensor d9 = Floats(DType.Float32, [2, 2, 6, 9]);
        using Tensor shortV = Floats(DType.Float32, [2, 2, 5, 8]);
        using Tensor threeHeads = Floats(DType.Float32, [2, 3, 6, 8]);
        using Tensor noHeads = Floats(DType.Float32, [2, 0, 6, 8]);
        using Tensor wideQ = Floats(DType.Float32, [1, 1, 1, 257]);
        using Tensor wideK = Floats(DType.Float32, [1, 1, 2, 257]);
        using Tensor ints = Tensor.FromArray(new int[2 * 2 * 6 * 8], 2, 2, 6, 8);
        switch (rule)
        {
            case "rank": Refused<ArgumentException>("k", s => Attention.Forward(s.Q, rank3, s.V, output: s.Output, logSumExp: s.Lse)); break;
            case "dtype": Refused<ArgumentException>("k", s => Attention.Forward(s.Q, half, s.V, output: s.Output, logSumExp: s.Lse)); break;
            case "device": Refused<ArgumentException>("v", s => Attention.Forward(s.Q, s.K, elsewhere, output: s.Output, logSumExp: s.Lse)); break;
            case "batch": Refused<ArgumentException>("k", s => Attention.Forward(s.Q, batch3, s.V, output: s.Output, logSumExp: s.Lse)); break;
            case "headDim": Refused<ArgumentException>("v", s => Attention.Forward(s.Q, s.K, d9, output: s.Output, logSumExp: s.Lse)); break;
            case "kvShape": Refused<ArgumentException>("v", s => Attention.Forward(s.Q, s.K, shortV, output: s.Output, logSumExp: s.Lse)); break;
            case "groups": Refused<ArgumentException>("k", s => Attention.Forward(s.Q, threeHeads, threeHeads, output: s.Output, logSumExp: s.Lse)); break;
            case "zeroHeads": Refused<ArgumentException>("k", s => Attention.Forward(s.Q, noHeads, noHeads, output: s.Output, logSumExp: s.Lse)); break;
            case "tooWide":
                Refused<ArgumentException>("q", _ => Attention.Forward(wideQ, wideK, wideK));
                break;
            case "integers": Refused<ArgumentException>("k", s => Attention.Forward(s.Q, ints, s.V, output: s.Output, logSumExp: s.Lse)); break;
        }
    }

    [Fact]
    public void Masks_and_scales_out_of_range_are_refused()
    {
        Refused<ArgumentOutOfRangeException>("mask", s => Attention.Forward(s.Q, s.K, s.V, new AttentionMask(true, -1), output: s.Output, logSumExp: s.Lse));
        foreach (float scale in new[] { 0f, -1f, float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            Refused<ArgumentOutOfRangeException>("scale", s => Attention.Forward(s.Q, s.K, s.V, scale: scale, output: s.Output, logSumExp: s.Lse));
    }

    [Fact]
    public void Outputs_of_the_wrong_shape_dtype_or_device_or_aliasing_an_input_are_refused()
    {
        using Tensor wrongShape = Poisoned(DType.Float32, [2, 4, 8, 5], Device.Cpu);
        using Tensor wrongType = Poisoned(DType.BFloat16, [2, 4, 5, 8], Device.Cpu);
        using Tensor elsewhere = Poisoned(DType.Float32, [2, 4, 5, 8], Backends.CpuScalar);
        using Tensor lseType = Poisoned(DType.Float16, [2, 4, 5], Device.Cpu);
        using Tensor lseShape = Poisoned(DType.Float32, [2, 4, 5, 1], Device.Cpu);
        Refused<ArgumentException>("output", s => Attention.Forward(s.Q, s.K, s.V, output: wrongShape, logSumExp: s.Lse));
        Refused<ArgumentException>("output", s => Attention.Forward(s.Q, s.K, s.V, output: wrongType, logSumExp: s.Lse));
        Refused<ArgumentException>("output", s => Attention.Forward(s.Q, s.K, s.V, output: elsewhere, logSumExp: s.Lse));
        Refused<ArgumentException>("output", s => Attention.Forward(s.Q, s.K, s.V, output: s.Q, logSumExp: s.Lse));
        Refused<ArgumentException>("logSumExp", s => Attention.Forward(s.Q, s.K, s.V, output: s.Output, logSumExp: lseType));
        Refused<ArgumentException>("logSumExp", s => Attention.Forward(s.Q, s.K, s.V, output: s.Output, logSumExp: lseShape));
        Refused<ArgumentException>("logSumExp", s => Attention.Forward(s.Q, s.K, s.V, output: s.Output, logSumExp: s.Output));
    }

    [Fact]
    public void Backward_checks_the_gradient_output_and_log_sum_exp()
    {
        using var set = new Set();
        using Tensor o = Attention.Forward(set.Q, set.K, set.V, logSumExp: set.Lse);
        using Tensor wrongShape = Floats(DType.Float32, [2, 4, 6, 8]);
        using Tensor wrongType = Floats(DType.Float16, [2, 4, 5, 8]);
        using Tensor lseShape = Floats(DType.Float32, [2, 4, 6]);
        Assert.Equal("outputGradient", Assert.Throws<ArgumentException>(() => Attention.Backward(wrongShape, set.Q, set.K, set.V, o, set.Lse)).ParamName);
        Assert.Equal("outputGradient", Assert.Throws<ArgumentException>(() => Attention.Backward(wrongType, set.Q, set.K, set.V, o, set.Lse)).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => Attention.Backward(o, set.Q, set.K, set.V, wrongShape, set.Lse)).ParamName);
        Assert.Equal("logSumExp", Assert.Throws<ArgumentException>(() => Attention.Backward(o, set.Q, set.K, set.V, o, lseShape)).ParamName);
        Assert.Equal("outputGradient", Assert.Throws<ArgumentNullException>(() => Attention.Backward(null!, set.Q, set.K, set.V, o, set.Lse)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => Attention.Backward(o, set.Q, set.K, set.V, o, set.Lse, new AttentionMask(Window: -3)));
    }

    [Fact]
    public void Null_and_disposed_tensors_are_refused()
    {
        Refused<ArgumentNullException>("q", s => Attention.Forward(null!, s.K, s.V, output: s.Output, logSumExp: s.Lse));
        Refused<ArgumentNullException>("v", s => Attention.Forward(s.Q, s.K, null!, output: s.Output, logSumExp: s.Lse));
        using var set = new Set();
        Tensor gone = Floats(DType.Float32, [2, 2, 6, 8]);
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Attention.Forward(set.Q, gone, set.V, output: set.Output, logSumExp: set.Lse));
        Tensor goneOutput = Poisoned(DType.Float32, [2, 4, 5, 8], Device.Cpu);
        goneOutput.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Attention.Forward(set.Q, set.K, set.V, output: goneOutput, logSumExp: set.Lse));
        set.Untouched();
    }
}
