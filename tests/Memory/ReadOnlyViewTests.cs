using NativeTensor.Memory;
using NativeTensor.Training;
using static NativeTensor.Tests.Memory.MappedFixtures;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// A mapped tensor is read-only: every op that writes refuses it as its output or in-place argument with the
/// documented exception, and the file's bytes are the same afterwards; reading it in place works.
/// </summary>
public sealed class ReadOnlyViewTests
{
    [Fact]
    public void Every_writing_op_refuses_a_mapped_tensor_and_the_file_is_unchanged()
    {
        using TempFile f32 = Temp(".npy"), bf16 = Temp(".npy");
        Write(f32.Path, DType.Float32);
        Write(bf16.Path, DType.BFloat16);
        byte[] f32Bytes = File.ReadAllBytes(f32.Path), bf16Bytes = File.ReadAllBytes(bf16.Path);
        using MappedTensor mapped = MappedTensor.OpenNpy(f32.Path);
        using MappedTensor mapped16 = MappedTensor.OpenNpy(bf16.Path, DType.BFloat16);
        Tensor ro = mapped.Tensor, ro16 = mapped16.Tensor;
        Assert.True(ro.IsReadOnly && ro16.IsReadOnly);

        using Tensor p = Ram(DType.Float32), g = Ram(DType.Float32), m = Ram(DType.Float32), v = Ram(DType.Float32);
        using Tensor w16 = Ram(DType.BFloat16), frames = Ram(DType.Float32);
        var adamw = new AdamWOptions();
        var sgd = new SgdOptions();
        (string Op, Action Call, string Name)[] refusals =
        [
            ("Windows.Gather output", () => Windows.Gather(frames, [0L, 2], 2, ro), "output"),
            ("Windows.Gather output, fused convert", () => Windows.Gather(frames, [0L, 2], 2, ro16, DType.BFloat16), "output"),
            ("Precision.Convert output", () => Precision.Convert(w16, DType.Float32, ro), "output"),
            ("Precision.UnscaleAndCheck gradients", () => Precision.UnscaleAndCheck([g, ro], 0.5f), "gradients"),
            ("OptimizerSteps.AdamW parameters", () => OptimizerSteps.AdamW(ro, g, m, v, adamw, 1), "parameters"),
            ("OptimizerSteps.AdamW firstMoment", () => OptimizerSteps.AdamW(p, g, ro, v, adamw, 1), "firstMoment"),
            ("OptimizerSteps.AdamW secondMoment", () => OptimizerSteps.AdamW(p, g, m, ro, adamw, 1), "secondMoment"),
            ("OptimizerSteps.AdamW working", () => OptimizerSteps.AdamW(p, g, m, v, adamw, 1, working: ro16), "working"),
            ("OptimizerSteps.Sgd parameters", () => OptimizerSteps.Sgd(ro, g, m, sgd, firstStep: true), "parameters"),
            ("OptimizerSteps.Sgd momentumBuffer", () => OptimizerSteps.Sgd(p, g, ro, sgd, firstStep: false), "momentumBuffer"),
            ("OptimizerSteps.Sgd working", () => OptimizerSteps.Sgd(p, g, m, sgd, firstStep: false, working: ro16), "working"),
            ("Linalg.MatMul c", () => Linalg.MatMul(frames, p, beta: 1, c: ro), "c"),
            ("Linalg.Syrk c", () => Linalg.Syrk(frames, beta: 1, c: ro), "c"),
            // Refused at construction: a read-only weight late in the list must not let Step update the ones before it.
            ("MixedPrecisionOptimizer masterWeights", () => new MixedPrecisionOptimizer([p, ro], DType.BFloat16, adamw).Dispose(), "masterWeights"),
        ];
        foreach ((string op, Action call, string name) in refusals)
        {
            var e = Assert.Throws<ArgumentException>(call);
            Assert.True(e.ParamName == name && e.Message.Contains("read-only", StringComparison.Ordinal), $"{op}: {e.Message} (parameter {e.ParamName})");
        }
        Assert.Contains("read-only", Assert.Throws<InvalidOperationException>(() => ro.CopyFrom<float>(new float[64])).Message);
        Assert.Contains("AsReadOnlySpan", Assert.Throws<InvalidOperationException>(() => ro.AsSpan<float>()).Message);
        Assert.Contains("read-only", Assert.Throws<InvalidOperationException>(() => ro16.AsSpan<BFloat16>()).Message);

        // Reading in place, and as the input of the same ops, works.
        Assert.Equal(Expected(64, F32), ro.AsReadOnlySpan<float>().ToArray());
        using (Tensor batch = Windows.Gather(ro, [1L, 5], 3)) Assert.Equal(F32(8 + 3), batch.ToArray<float>()[3]);
        OptimizerSteps.AdamW(p, ro, m, v, adamw, 1);
        Assert.Equal(f32Bytes, File.ReadAllBytes(f32.Path));
        Assert.Equal(bf16Bytes, File.ReadAllBytes(bf16.Path));
        Assert.Equal(Expected(64, F32), ro.ToArray<float>());
        Assert.Equal(new float[64], g.ToArray<float>());        // the refused unscale did not touch the list's first gradient
    }

    private static Tensor Ram(DType dtype) => Tensor.Zeros(dtype, [8, 8], Device.Cpu);

    private static void Write(string path, DType dtype)
    {
        using var writer = new NpyWriter(path, dtype, 8);
        using Tensor values = Tensor.FromArray(Expected(64, F32), 8, 8);
        using Tensor rows = dtype == DType.Float32 ? values.To(Device.Cpu) : Precision.Convert(values, dtype);
        writer.Append(rows);
    }
}
