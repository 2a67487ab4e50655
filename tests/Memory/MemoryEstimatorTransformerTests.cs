using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Memory;

namespace NativeTensor.Tests.Memory;

/// <summary>MemoryEstimator's transformer training and inference estimates, and RecommendedContext.</summary>
public sealed class MemoryEstimatorTransformerTests
{
    // Llama-2-7B (Touvron et al. 2023): 32 layers, d 4096, 32 heads, SwiGLU 11008, vocab 32000, untied head.
    private static readonly TransformerShape Llama2_7B = new(32, 4096, 32, 32, 11008, 32000, TiedEmbeddings: false, GatedFfn: true);
    // Llama-3-8B: 32 layers, d 4096, 32 heads, 8 KV heads (GQA), SwiGLU 14336, vocab 128256, untied.
    private static readonly TransformerShape Llama3_8B = new(32, 4096, 32, 8, 14336, 128256, TiedEmbeddings: false, GatedFfn: true);

    private static readonly Gen<TransformerShape> Models =
        from layers in Gen.Choose(1, 48)
        from headDim in Gen.Elements(16, 64, 128)
        from heads in Gen.Elements(1, 2, 4, 8, 16, 32)
        from kvDivisor in Gen.Elements(1, 2, 4, 8).Where(k => heads % k == 0)
        from ffnFactor in Gen.Choose(1, 4)
        from vocab in Gen.Choose(1, 200_000)
        from tied in Gen.Elements(false, true)
        from gated in Gen.Elements(false, true)
        select new TransformerShape(layers, heads * headDim, heads, heads / kvDivisor, ffnFactor * heads * headDim, vocab, tied, gated);

    private static readonly Gen<TrainingSetup> Setups =
        from batch in Gen.Choose(1, 64)
        from sequence in Gen.Choose(1, 65536)
        from parameter in Gen.Elements(DType.Float32, DType.BFloat16, DType.Float16)
        from master in Gen.Elements<DType?>(null, DType.Float32)
        from gradient in Gen.Elements(DType.Float32, DType.BFloat16)
        from activation in Gen.Elements(DType.Float32, DType.BFloat16)
        from optimizer in Gen.Elements(Enum.GetValues<OptimizerKind>())
        from checkpoint in Gen.Elements(0, 1, 2, 4, 7, 100)
        from linear in Gen.Elements(false, true)
        from dropout in Gen.Elements(false, true)
        select new TrainingSetup(batch, sequence, parameter, master, gradient, activation, optimizer, checkpoint, linear, dropout);

    [Fact]
    public void Llama_2_7B_has_its_published_parameter_count_and_mixed_precision_AdamW_costs_16_bytes_each()
    {
        MemoryEstimate e = MemoryEstimator.Training(Llama2_7B, new TrainingSetup(Batch: 1, Sequence: 4096));
        const long parameters = 6_738_415_616;   // the count of the released checkpoint
        Assert.Equal(2 * parameters, e["weights"]);
        Assert.Equal(4 * parameters, e["master weights"]);
        Assert.Equal(2 * parameters, e["gradients"]);
        Assert.Equal(8 * parameters, e["optimizer state"]);
        // ZeRO (Rajbhandari et al. 2020, §3.1): mixed-precision Adam holds 2 + 2 + 12 = 16 bytes per parameter.
        Assert.Equal(16 * parameters, e["weights"] + e["master weights"] + e["gradients"] + e["optimizer state"]);
        Assert.StartsWith("6,738,415,616 params (32 x (attn 67,108,864 + ffn 135,266,304 + norms 8,192)", e.Terms[0].Formula);
        Assert.Contains("optimizer state", e.ToString());
        Assert.Contains("total", e.ToString());
    }

    [Fact]
    public void Pure_Float32_AdamW_counts_no_second_master_copy_and_also_costs_16_bytes_each()
    {
        const long parameters = 6_738_415_616;
        // Weights are the master: 4 (weights) + 4 (gradients) + 8 (two Float32 moments) = 16 bytes per parameter.
        MemoryEstimate e = MemoryEstimator.Training(Llama2_7B, new TrainingSetup(1, 4096, ParameterType: DType.Float32, GradientType: DType.Float32));
        Assert.Equal(4 * parameters, e["weights"]);
        Assert.Equal(0, e["master weights"]);
        Assert.DoesNotContain(e.Terms, t => t.Name == "master weights");
        Assert.Equal(16 * parameters, e["weights"] + e["gradients"] + e["optimizer state"]);
        // Naming the master explicitly as the weights' type, or null, is the same setup.
        var pure = new TrainingSetup(1, 4096, ParameterType: DType.Float32, MasterType: null, GradientType: DType.Float32);
        Assert.Equal(e.Total, MemoryEstimator.Training(Llama2_7B, pure).Total);
        // A Float16 master beside BFloat16 weights is still a separate copy.
        Assert.Equal(2 * parameters, MemoryEstimator.Training(Llama2_7B, new TrainingSetup(1, 4096, MasterType: DType.Float16))["master weights"]);
    }

    [Fact]
    public void Llama_3_8B_KV_cache_is_128_KiB_per_token_in_BFloat16()
    {
        MemoryEstimate e = MemoryEstimator.Inference(Llama3_8B, new InferenceSetup(Batch: 1, Context: 8192));
        Assert.Equal(8192L * 128 * 1024, e["KV cache"]);   // 2 x 32 layers x 8 kv heads x 128 x 2 B = 128 KiB per token
        Assert.Equal("2 x 32 layers x 8 kv heads x 128 x 8,192 tokens x 1 batch x 2 B", e.Terms[1].Formula);
        Assert.Equal(2 * 8_030_261_248L, e["weights"]);      // Llama-3-8B's released count
        Assert.Equal(e["weights"] + e["KV cache"], e.Total);
        Assert.Equal(2 * e["KV cache"], MemoryEstimator.Inference(Llama3_8B, new InferenceSetup(1, 8192, DType.Float32))["KV cache"]);
    }

    [Fact]
    public void Activations_per_layer_are_Korthikantis_34_plus_5_as_over_h_with_16_bit_tensors_and_dropout()
    {
        var cases = from heads in Gen.Elements(1, 4, 12, 32, 96)
                    from headDim in Gen.Elements(8, 64, 128)
                    from s in Gen.Choose(1, 8192)
                    from b in Gen.Choose(1, 32)
                    select (heads, headDim, s, b);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            long h = (long)c.heads * c.headDim, a = c.heads, s = c.s, b = c.b;
            var gpt = new TransformerShape(1, (int)h, c.heads, c.heads, (int)(4 * h), 1);
            var paper = new TrainingSetup(c.b, c.s, ActivationType: DType.BFloat16, LinearAttention: false, Dropout: true);
            // s b h (34 + 5 a s / h) = 34 s b h + 5 a s^2 b, kept in integers.
            Assert.Equal(34 * s * b * h + 5 * a * s * s * b, MemoryEstimator.LayerActivationBytes(gpt, paper, 2).Bytes);
            // Memory-linear attention stores no scores, only a Float32 log-sum-exp per row; no dropout, no masks.
            var linear = paper with { LinearAttention = true, Dropout = false };
            Assert.Equal(32 * s * b * h + 4 * a * s * b, MemoryEstimator.LayerActivationBytes(gpt, linear, 2).Bytes);
            // Float32 activations double every tensor; the 1-byte masks stay.
            Assert.Equal(66 * s * b * h + 9 * a * s * s * b, MemoryEstimator.LayerActivationBytes(gpt, paper with { ActivationType = DType.Float32 }, 4).Bytes);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    [Fact]
    public void Checkpointing_keeps_the_segment_inputs_and_one_segment()
    {
        var model = new TransformerShape(24, 1024, 16, 4, 4096, 50000);
        var setup = new TrainingSetup(Batch: 8, Sequence: 2048);
        MemoryEstimate full = MemoryEstimator.Training(model, setup);
        long perLayer = full["activations"] / 24;
        foreach (int c in new[] { 1, 4, 5, 24, 30 })
        {
            MemoryEstimate checkpointed = MemoryEstimator.Training(model, setup with { CheckpointEvery = c });
            long boundaries = (24 + c - 1) / c;
            Assert.Equal(boundaries * 2048 * 8 * 1024 * 2, checkpointed["checkpointed layer inputs"]);
            Assert.Equal(Math.Min(c, 24) * perLayer, checkpointed["recomputed segment"]);
            Assert.Equal(0, checkpointed["activations"]);
            Assert.Equal(full.Total - full["activations"], checkpointed.Total - checkpointed["checkpointed layer inputs"] - checkpointed["recomputed segment"]);
        }
        // Every 4 or 5 layers (about sqrt(24)) saves most of the activations.
        Assert.True(MemoryEstimator.Training(model, setup with { CheckpointEvery = 5 }).Total < full.Total - full["activations"] / 2);
    }

    [Fact]
    public void Totals_grow_with_the_sequence_the_batch_and_the_context()
    {
        var cases = from model in Models
                    from setup in Setups
                    from more in Gen.Choose(1, 5000)
                    select (model, setup, more);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            long total = MemoryEstimator.Training(c.model, c.setup).Total;
            Assert.True(MemoryEstimator.Training(c.model, c.setup with { Sequence = c.setup.Sequence + c.more }).Total > total);
            Assert.True(MemoryEstimator.Training(c.model, c.setup with { Batch = c.setup.Batch + c.more }).Total > total);
            var serve = new InferenceSetup(c.setup.Batch, c.setup.Sequence);
            long inference = MemoryEstimator.Inference(c.model, serve).Total;
            Assert.True(MemoryEstimator.Inference(c.model, serve with { Context = serve.Context + c.more }).Total > inference);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    [Fact]
    public void RecommendedContext_is_the_last_length_that_fits()
    {
        var cases = from model in Models
                    from setup in Setups
                    from log2Budget in Gen.Choose(20, 45)
                    from fraction in Gen.Choose(1, 1000)
                    select (model, setup, budget: (1L << log2Budget) / 1000 * fraction);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            int s = MemoryEstimator.RecommendedContext(c.model, c.setup, c.budget);
            long Train(int length) => MemoryEstimator.Training(c.model, c.setup with { Sequence = length }).Total;
            if (s == 0) Assert.True(Train(1) > c.budget);
            else Assert.True(Train(s) <= c.budget, $"total({s}) = {Train(s)} > {c.budget}");
            if (s < int.MaxValue) Assert.True(Train(s + 1) > c.budget, $"total({s + 1}) = {Train(s + 1)} <= {c.budget}");

            var serve = new InferenceSetup(c.setup.Batch, 1);
            int t = MemoryEstimator.RecommendedContext(c.model, serve, c.budget);
            long Serve(int length) => MemoryEstimator.Inference(c.model, serve with { Context = length }).Total;
            if (t == 0) Assert.True(Serve(1) > c.budget);
            else Assert.True(Serve(t) <= c.budget);
            if (t < int.MaxValue) Assert.True(Serve(t + 1) > c.budget);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200));
    }

    [Fact]
    public void RecommendedContext_for_Llama_3_8B_in_24_GiB_and_from_the_budget()
    {
        // 16 GB of BFloat16 weights leave 24 GiB - 16.06 GB for 128 KiB per token.
        int tokens = MemoryEstimator.RecommendedContext(Llama3_8B, new InferenceSetup(1, 1), 24L << 30);
        Assert.Equal(((24L << 30) - 2 * 8_030_261_248L) / (128 * 1024), tokens);
        Assert.Equal(0, MemoryEstimator.RecommendedContext(Llama3_8B, new InferenceSetup(1, 1), 1L << 30));   // weights alone do not fit
        MemoryBudget host = MemoryBudget.Current();
        var tiny = new TransformerShape(2, 64, 4, 2, 256, 100);
        Assert.Equal(MemoryEstimator.RecommendedContext(tiny, new TrainingSetup(1, 1), host.AvailableBytes),
                     MemoryEstimator.RecommendedContext(tiny, new TrainingSetup(1, 1), host));
    }

    [Fact]
    public void Bad_shapes_and_setups_are_refused_with_the_argument_named()
    {
        var ok = new TransformerShape(2, 64, 4, 2, 256, 100);
        var train = new TrainingSetup(1, 16);
        void Refused(string name, Action call) => Assert.Equal(name, Assert.Throws<ArgumentOutOfRangeException>(call).ParamName);
        Refused("model.Layers", () => MemoryEstimator.Training(ok with { Layers = 0 }, train));
        Refused("model.Heads", () => MemoryEstimator.Training(ok with { Heads = 3 }, train));
        Refused("model.KvHeads", () => MemoryEstimator.Training(ok with { KvHeads = 3 }, train));
        Refused("model.Vocab", () => MemoryEstimator.Inference(ok with { Vocab = -1 }, new InferenceSetup(1, 1)));
        Refused("training.Sequence", () => MemoryEstimator.Training(ok, train with { Sequence = 0 }));
        Refused("training.CheckpointEvery", () => MemoryEstimator.Training(ok, train with { CheckpointEvery = -1 }));
        Refused("training.ActivationType", () => MemoryEstimator.Training(ok, train with { ActivationType = DType.Int32 }));
        Refused("training.MasterType", () => MemoryEstimator.Training(ok, train with { MasterType = DType.Int64 }));
        Refused("training.Optimizer", () => MemoryEstimator.Training(ok, train with { Optimizer = (OptimizerKind)9 }));
        Refused("inference.Context", () => MemoryEstimator.Inference(ok, new InferenceSetup(1, 0)));
        Refused("inference.CacheType", () => MemoryEstimator.Inference(ok, new InferenceSetup(1, 1, DType.Int32)));
        Refused("budgetBytes", () => MemoryEstimator.RecommendedContext(ok, train, -1));
        Assert.Throws<ArgumentNullException>(() => MemoryEstimator.Training(null!, train));
        var huge = new TransformerShape(int.MaxValue, int.MaxValue, 1, 1, int.MaxValue, int.MaxValue);
        Assert.Contains("parameter count", Assert.Throws<OverflowException>(() => MemoryEstimator.Training(huge, train)).Message);
        Assert.Contains("KV cache", Assert.Throws<OverflowException>(
            () => MemoryEstimator.Inference(Llama3_8B, new InferenceSetup(int.MaxValue, int.MaxValue, DType.Float32))).Message);
    }
}
