using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// Every rule <see cref="OptimizerSteps"/> enforces: each bad argument gets its exception, naming the argument, before
/// anything is written (every tensor keeps its bytes). Validation happens before dispatch, so the CPU suffices; the
/// device-side rule (OpenCL without subnormals) is tested with the OpenCL runtime.
/// </summary>
public sealed class OptimizerStepsBadInputTests
{
    private sealed class Set : IDisposable
    {
        public readonly Tensor P, G, M, V, W, Half, Ints, Short, FlatHalf, Elsewhere;

        public Set(Device device)
        {
            var random = new Random(5);
            byte[] Floats(int n) => [.. Enumerable.Range(0, n).SelectMany(_ => BitConverter.GetBytes((float)random.NextDouble()))];
            P = FromBytes(DType.Float32, [3, 11], device, Floats(33));
            G = FromBytes(DType.BFloat16, [3, 11], device, [.. Enumerable.Range(0, 33).SelectMany(_ => BitConverter.GetBytes((ushort)0x3F80))]);
            M = FromBytes(DType.Float32, [3, 11], device, Floats(33));
            V = FromBytes(DType.Float32, [3, 11], device, Floats(33));
            W = FromBytes(DType.BFloat16, [3, 11], device, RandomBytes(random, 66));
            Half = FromBytes(DType.Float16, [3, 11], device, RandomBytes(random, 66));
            Ints = FromBytes(DType.Int32, [3, 11], device, RandomBytes(random, 132));
            Short = FromBytes(DType.Float32, [33], device, Floats(33));
            FlatHalf = FromBytes(DType.Float16, [33], device, RandomBytes(random, 66));
            Elsewhere = FromBytes(DType.Float32, [3, 11], Backends.CpuScalar, Floats(33));
        }

        public Tensor[] All => [P, G, M, V, W, Half, Ints, Short, FlatHalf, Elsewhere];

        public void Dispose()
        {
            foreach (Tensor t in All) t.Dispose();
        }
    }

    public static TheoryData<string, Type, string> Rules() => new()
    {
        { "null parameters", typeof(ArgumentNullException), "parameters" },
        { "null gradient", typeof(ArgumentNullException), "gradient" },
        { "null first moment", typeof(ArgumentNullException), "firstMoment" },
        { "null second moment", typeof(ArgumentNullException), "secondMoment" },
        { "null options", typeof(ArgumentNullException), "options" },
        { "Float16 parameters", typeof(ArgumentException), "parameters" },
        { "Int32 gradient", typeof(ArgumentException), "gradient" },
        { "BFloat16 moment", typeof(ArgumentException), "firstMoment" },
        { "Float32 working", typeof(ArgumentException), "working" },
        { "Int32 working", typeof(ArgumentException), "working" },
        { "shape mismatch", typeof(ArgumentException), "gradient" },
        { "working shape mismatch", typeof(ArgumentException), "working" },
        { "other device", typeof(ArgumentException), "secondMoment" },
        { "moment aliases parameters", typeof(ArgumentException), "firstMoment" },
        { "working aliases gradient", typeof(ArgumentException), "working" },
        { "disposed gradient", typeof(ObjectDisposedException), "" },
        { "step 0", typeof(ArgumentOutOfRangeException), "step" },
        { "scale 0", typeof(ArgumentOutOfRangeException), "inverseScale" },
        { "scale NaN", typeof(ArgumentOutOfRangeException), "inverseScale" },
        { "scale +Inf", typeof(ArgumentOutOfRangeException), "inverseScale" },
        { "scale negative", typeof(ArgumentOutOfRangeException), "inverseScale" },
        { "lr 0", typeof(ArgumentOutOfRangeException), "LearningRate" },
        { "lr NaN", typeof(ArgumentOutOfRangeException), "LearningRate" },
        { "beta1 1", typeof(ArgumentOutOfRangeException), "Beta1" },
        { "beta2 negative", typeof(ArgumentOutOfRangeException), "Beta2" },
        { "eps 0", typeof(ArgumentOutOfRangeException), "Epsilon" },
        { "weight decay negative", typeof(ArgumentOutOfRangeException), "WeightDecay" },
        { "lr x weight decay > 1", typeof(ArgumentOutOfRangeException), "WeightDecay" },
        { "lr past float", typeof(ArgumentOutOfRangeException), "options" },
        { "sgd momentum 0", typeof(ArgumentOutOfRangeException), "Momentum" },
        { "sgd momentum 1", typeof(ArgumentOutOfRangeException), "Momentum" },
        { "sgd dampening 1", typeof(ArgumentOutOfRangeException), "Dampening" },
        { "sgd nesterov with dampening", typeof(ArgumentOutOfRangeException), "Dampening" },
        { "sgd weight decay Inf", typeof(ArgumentOutOfRangeException), "WeightDecay" },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void Bad_arguments_are_refused_before_anything_is_written(string rule, Type exception, string parameter)
    {
        using var s = new Set(Device.Cpu);
        byte[][] before = [.. s.All.Select(Bytes)];
        var adamW = new AdamWOptions();
        Action call = rule switch
        {
            "null parameters" => () => OptimizerSteps.AdamW(null!, s.G, s.M, s.V, adamW, 1),
            "null gradient" => () => OptimizerSteps.AdamW(s.P, null!, s.M, s.V, adamW, 1),
            "null first moment" => () => OptimizerSteps.AdamW(s.P, s.G, null!, s.V, adamW, 1),
            "null second moment" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, null!, adamW, 1),
            "null options" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, null!, 1),
            "Float16 parameters" => () => OptimizerSteps.AdamW(s.Half, s.G, s.M, s.V, adamW, 1),
            "Int32 gradient" => () => OptimizerSteps.AdamW(s.P, s.Ints, s.M, s.V, adamW, 1),
            "BFloat16 moment" => () => OptimizerSteps.AdamW(s.P, s.G, s.W, s.V, adamW, 1),
            "Float32 working" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW, 1, 1, s.Short),
            "Int32 working" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW, 1, 1, s.Ints),
            "shape mismatch" => () => OptimizerSteps.AdamW(s.P, s.Short, s.M, s.V, adamW, 1),
            "working shape mismatch" => () => OptimizerSteps.Sgd(s.P, s.G, s.M, new SgdOptions(), true, 1, s.FlatHalf),
            "other device" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.Elsewhere, adamW, 1),
            "moment aliases parameters" => () => OptimizerSteps.AdamW(s.P, s.G, s.P, s.V, adamW, 1),
            "working aliases gradient" => () => OptimizerSteps.Sgd(s.P, s.Half, s.M, new SgdOptions(), true, 1, s.Half),
            "disposed gradient" => () => { s.G.Dispose(); OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW, 1); },
            "step 0" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW, 0),
            "scale 0" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW, 1, 0),
            "scale NaN" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW, 1, float.NaN),
            "scale +Inf" => () => OptimizerSteps.Sgd(s.P, s.G, s.M, new SgdOptions(), false, float.PositiveInfinity),
            "scale negative" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW, 1, -0.5f),
            "lr 0" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { LearningRate = 0 }, 1),
            "lr NaN" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { LearningRate = double.NaN }, 1),
            "beta1 1" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { Beta1 = 1 }, 1),
            "beta2 negative" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { Beta2 = -0.1 }, 1),
            "eps 0" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { Epsilon = 0 }, 1),
            "weight decay negative" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { WeightDecay = -1e-2 }, 1),
            "lr x weight decay > 1" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { LearningRate = 0.5, WeightDecay = 3 }, 1),
            "lr past float" => () => OptimizerSteps.AdamW(s.P, s.G, s.M, s.V, adamW with { LearningRate = 1e300, WeightDecay = 0 }, 1),
            "sgd momentum 0" => () => OptimizerSteps.Sgd(s.P, s.G, s.M, new SgdOptions { Momentum = 0 }, true),
            "sgd momentum 1" => () => OptimizerSteps.Sgd(s.P, s.G, s.M, new SgdOptions { Momentum = 1 }, true),
            "sgd dampening 1" => () => OptimizerSteps.Sgd(s.P, s.G, s.M, new SgdOptions { Dampening = 1 }, true),
            "sgd nesterov with dampening" => () => OptimizerSteps.Sgd(s.P, s.G, s.M, new SgdOptions { Nesterov = true, Dampening = 0.1 }, true),
            "sgd weight decay Inf" => () => OptimizerSteps.Sgd(s.P, s.G, s.M, new SgdOptions { WeightDecay = double.PositiveInfinity }, true),
            _ => throw new ArgumentException(rule),
        };
        Exception thrown = Assert.Throws(exception, call);
        if (thrown is ArgumentException argument && parameter.Length > 0)
            Assert.Equal(parameter, argument.ParamName);
        Assert.False(string.IsNullOrWhiteSpace(thrown.Message));
        for (int i = 0; i < before.Length; i++)
            if (!s.All[i].IsDisposed) BitExact(before[i], Bytes(s.All[i]), $"{rule}: tensor {i}");
    }

    [Fact]
    public void FindNonFinite_refuses_nulls_integers_and_mixed_devices()
    {
        using Tensor ints = Tensor.Zeros(DType.Int32, [4], Device.Cpu);
        using Tensor here = Tensor.Zeros(DType.Float32, [4], Device.Cpu);
        using Tensor there = Tensor.Zeros(DType.Float32, [4], Backends.CpuScalar);
        Assert.Throws<ArgumentNullException>(() => Precision.FindNonFinite(null!));
        Assert.Throws<ArgumentNullException>(() => Precision.FindNonFinite([here, null!]));
        Assert.Throws<ArgumentException>(() => Precision.FindNonFinite([ints]));
        Assert.Throws<ArgumentException>(() => Precision.FindNonFinite([here, there]));
        var gone = Tensor.Zeros(DType.Float32, [4], Device.Cpu);
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Precision.FindNonFinite([gone]));
    }
}
