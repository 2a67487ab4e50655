namespace NativeTensor.Memory;

public static partial class MemoryEstimator
{
    /// <summary>
    /// The memory of one training step of <paramref name="model"/>: weights, master weights (when their type differs
    /// from the weights'), gradients, optimizer state, stored activations (with checkpointing) and the output layer's
    /// activations.
    /// </summary>
    /// <remarks>
    /// <para>Activations per layer follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
    /// Transformer Models" (arXiv:2205.05198, §4.1): <c>s b h (34 + 5 a s / h)</c> bytes with 16-bit activations and
    /// dropout, adapted to the element size, to GQA, to the feed-forward size and to linear attention; the terms are
    /// in <see cref="LayerActivationBytes"/>, which <c>Dropout = true</c>, BFloat16, materialised scores, KvHeads = Heads
    /// and FfnDim = 4 ModelDim reproduce exactly.</para>
    /// <para>Checkpointing every c layers keeps ceil(L / c) layer inputs (s b h each) and, during the backward pass,
    /// one segment of min(c, L) layers recomputed in full.</para>
    /// <para>The output layer keeps the final norm's input and the head's input (s b h each) and the logits in Float32
    /// for the loss (4 s b V, as the paper counts them). Not counted: the embedding's dropout mask, temporary workspace
    /// of a single kernel, the allocator's fragmentation, and the runtime itself.</para>
    /// </remarks>
    /// <exception cref="ArgumentNullException">model or training is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A dimension or count &lt; 1 (CheckpointEvery &lt; 0), Heads not dividing ModelDim or KvHeads not dividing Heads, or a non-float dtype.</exception>
    /// <exception cref="OverflowException">A term exceeds 2^63 - 1 bytes.</exception>
    public static MemoryEstimate Training(TransformerShape model, TrainingSetup training)
    {
        (long parameters, string count) = Parameters(model);
        ArgumentNullException.ThrowIfNull(training);
        AtLeast(training.Batch, 1, "training.Batch");
        AtLeast(training.Sequence, 1, "training.Sequence");
        AtLeast(training.CheckpointEvery, 0, "training.CheckpointEvery");
        int p = FloatSize(training.ParameterType, "training.ParameterType");
        int g = FloatSize(training.GradientType, "training.GradientType");
        int e = FloatSize(training.ActivationType, "training.ActivationType");
        int states = training.Optimizer switch
        {
            OptimizerKind.None => 0,
            OptimizerKind.SgdMomentum => 1,
            OptimizerKind.AdamW => 2,
            _ => throw new ArgumentOutOfRangeException("training.Optimizer", training.Optimizer, "not a defined OptimizerKind"),
        };

        long s = training.Sequence, b = training.Batch, h = model.ModelDim, layers = model.Layers;
        var terms = new List<MemoryTerm> { Term("weights", $"{count} x {p} B", parameters, p) };
        // A master of the weights' own type is the weights themselves (pure Float32 training): no second copy.
        if (training.MasterType is DType master && master != training.ParameterType)
        {
            int m = FloatSize(master, "training.MasterType");
            terms.Add(Term("master weights", $"{count} x {m} B", parameters, m));
        }
        terms.Add(Term("gradients", $"{count} x {g} B", parameters, g));
        if (states > 0) terms.Add(Term("optimizer state", $"{count} x {states} {training.Optimizer} states x 4 B", parameters, states, 4));

        (long perLayer, string layerFormula) = LayerActivationBytes(model, training, e);
        if (training.CheckpointEvery == 0)
        {
            terms.Add(Term("activations", $"{layers} layers x {N(perLayer)} B ({layerFormula})", layers, perLayer));
        }
        else
        {
            long c = Math.Min(training.CheckpointEvery, layers), boundaries = (layers + c - 1) / c;
            terms.Add(Term("checkpointed layer inputs", $"ceil({layers} layers / {training.CheckpointEvery}) x {s} tokens x {b} batch x {h} x {e} B",
                boundaries, s, b, h, e));
            terms.Add(Term("recomputed segment", $"{c} layers x {N(perLayer)} B ({layerFormula})", c, perLayer));
        }
        terms.Add(Term("output layer inputs", $"2 (final norm, head) x {s} tokens x {b} batch x {h} x {e} B", 2, s, b, h, e));
        terms.Add(Term("logits", $"{s} tokens x {b} batch x {model.Vocab} vocab x 4 B (Float32 for the loss)", s, b, model.Vocab, 4));
        return new MemoryEstimate($"training: {layers} layers, d {h}, batch {b} x {s} tokens", terms);
    }

    /// <summary>
    /// The memory of serving <paramref name="model"/>: the weights and the KV cache,
    /// <c>2 x Layers x KvHeads x HeadDim x Context x Batch x cache size</c> (keys and values, every layer).
    /// </summary>
    /// <remarks>Not counted: one decoding step's transient activations (a few s x h buffers of one layer at a time) and the runtime.</remarks>
    /// <exception cref="ArgumentNullException">model or inference is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A dimension or count &lt; 1, Heads not dividing ModelDim or KvHeads not dividing Heads, or a non-float dtype.</exception>
    /// <exception cref="OverflowException">A term exceeds 2^63 - 1 bytes.</exception>
    public static MemoryEstimate Inference(TransformerShape model, InferenceSetup inference)
    {
        (long parameters, string count) = Parameters(model);
        ArgumentNullException.ThrowIfNull(inference);
        AtLeast(inference.Batch, 1, "inference.Batch");
        AtLeast(inference.Context, 1, "inference.Context");
        int w = FloatSize(inference.WeightType, "inference.WeightType");
        int c = FloatSize(inference.CacheType, "inference.CacheType");
        return new MemoryEstimate($"inference: {model.Layers} layers, batch {inference.Batch} x {inference.Context} tokens", [
            Term("weights", $"{count} x {w} B", parameters, w),
            Term("KV cache", $"2 x {model.Layers} layers x {model.KvHeads} kv heads x {model.HeadDim} x {N(inference.Context)} tokens x {inference.Batch} batch x {c} B",
                2, model.Layers, model.KvHeads, model.HeadDim, inference.Context, inference.Batch, c)]);
    }

    /// <summary>
    /// The longest <see cref="TrainingSetup.Sequence"/> whose <see cref="Training"/> total is at most
    /// <paramref name="budgetBytes"/>: total(result) &lt;= budget &lt; total(result + 1). The total grows with the
    /// sequence, so a binary search finds it. 0 when even one token does not fit (see Training with Sequence = 1 for why).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">budgetBytes &lt; 0, or the model or setup is refused as by <see cref="Training"/>.</exception>
    public static int RecommendedContext(TransformerShape model, TrainingSetup training, long budgetBytes)
    {
        ArgumentNullException.ThrowIfNull(training);
        Training(model, training with { Sequence = 1 });   // validates everything else before the search
        return Longest(budgetBytes, s => Training(model, training with { Sequence = s }).Total);
    }

    /// <summary><see cref="RecommendedContext(TransformerShape, TrainingSetup, long)"/> within <paramref name="budget"/>'s <see cref="MemoryBudget.AvailableBytes"/>.</summary>
    /// <exception cref="ArgumentNullException">budget is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As the byte-count overload.</exception>
    public static int RecommendedContext(TransformerShape model, TrainingSetup training, MemoryBudget budget)
    {
        ArgumentNullException.ThrowIfNull(budget);
        return RecommendedContext(model, training, budget.AvailableBytes);
    }

    /// <summary>The longest <see cref="InferenceSetup.Context"/> whose <see cref="Inference"/> total is at most <paramref name="budgetBytes"/>; 0 when one token does not fit.</summary>
    /// <exception cref="ArgumentOutOfRangeException">budgetBytes &lt; 0, or the model or setup is refused as by <see cref="Inference"/>.</exception>
    public static int RecommendedContext(TransformerShape model, InferenceSetup inference, long budgetBytes)
    {
        ArgumentNullException.ThrowIfNull(inference);
        Inference(model, inference with { Context = 1 });
        return Longest(budgetBytes, t => Inference(model, inference with { Context = t }).Total);
    }

    /// <summary><see cref="RecommendedContext(TransformerShape, InferenceSetup, long)"/> within <paramref name="budget"/>'s <see cref="MemoryBudget.AvailableBytes"/>.</summary>
    /// <exception cref="ArgumentNullException">budget is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As the byte-count overload.</exception>
    public static int RecommendedContext(TransformerShape model, InferenceSetup inference, MemoryBudget budget)
    {
        ArgumentNullException.ThrowIfNull(budget);
        return RecommendedContext(model, inference, budget.AvailableBytes);
    }

    /// <summary>The largest n in [0, int.MaxValue] with total(n) &lt;= budget (total(0) counts as fitting), for a nondecreasing total.</summary>
    private static int Longest(long budgetBytes, Func<int, long> total)
    {
        AtLeast(budgetBytes, 0, nameof(budgetBytes));
        bool Fits(int n)
        {
            try { return total(n) <= budgetBytes; }
            catch (OverflowException) { return false; }   // past 2^63 - 1 bytes: more than any budget
        }
        int lo = 0, hi = int.MaxValue;   // invariant: Fits(lo) (or lo = 0); everything above hi does not fit
        while (lo < hi)
        {
            int mid = (int)(lo + ((long)hi - lo + 1) / 2);
            if (Fits(mid)) lo = mid; else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>
    /// Activation bytes one layer stores for the backward pass, and the formula with its numbers. Source: Korthikanti
    /// et al. 2022, §4.1, per layer with 16-bit activations and dropout, no parallelism: <c>s b h (34 + 5 a s / h)</c> =
    /// attention 11 sbh + 5 a s² b (QKV input 2sbh, Q and K 4sbh, softmax output 2as²b, its dropout mask as²b, dropout
    /// output 2as²b, V 2sbh, output-projection input 2sbh, output dropout mask sbh), MLP 19 sbh (first linear's input
    /// 2sbh, GeLU input 8sbh, GeLU output 8sbh, dropout mask sbh), two layer norms' inputs 4sbh.
    /// </summary>
    /// <remarks>
    /// Our adaptation, with e bytes per activation, m = 1 byte per mask element when dropout is on (else 0),
    /// kv = KvHeads x HeadDim, f = FfnDim:
    /// attention tensors e s b (3h + 2kv) (QKV input, Q, output-projection input at h; K and V at kv, as GQA makes
    /// them); attention-output mask m s b h; MLP e s b (h + 2f), or (h + 3f) gated (gate, up, their product); MLP mask
    /// m s b h; norms 2 e s b h. Scores when materialised: the softmax output e a s² b, plus with dropout its mask and
    /// output (e + m) a s² b. Memory-linear attention keeps no scores: its backward recomputes them from Q, K and the
    /// Float32 log-sum-exp of each row, 4 a s b, and regenerates a dropout mask from the random state.
    /// At e = 2, m = 1, kv = h, f = 4h with scores this is 34 sbh + 5 a s² b, the paper's count.
    /// </remarks>
    internal static (long Bytes, string Formula) LayerActivationBytes(TransformerShape model, TrainingSetup training, int e)
    {
        long s = training.Sequence, b = training.Batch, h = model.ModelDim, a = model.Heads, f = model.FfnDim;
        long kv = (long)model.KvHeads * model.HeadDim, mask = training.Dropout ? 1 : 0;
        string name = "activations per layer";
        // attention (3h + 2kv) + MLP (h + 2f or 3f) + norms (2h), in elements: below 2^40 for int dimensions
        long widths = 3 * h + 2 * kv + h + (model.GatedFfn ? 3 : 2) * f + 2 * h;
        long tensors = Product(name, "s b widths e", s, b, widths, e);
        long masks = Product(name, "s b 2h m", s, b, 2 * h, mask);
        string scoresFormula;
        long scores;
        if (training.LinearAttention)
        {
            scores = Product(name, "4 a s b", 4, a, s, b);
            scoresFormula = $"log-sum-exp 4 B x {a} heads x {s} x {b}";
        }
        else
        {
            long perScore = e + (training.Dropout ? e + mask : 0);
            scores = Product(name, "a s s b bytes", a, s, s, b, perScore);
            scoresFormula = $"scores {perScore} B x {a} heads x {s}^2 x {b}";
        }
        Int128 sum = (Int128)tensors + masks + scores;
        long bytes = sum > long.MaxValue ? throw new OverflowException($"{name} exceed 2^63 - 1 bytes") : (long)sum;
        string formula = $"{s} x {b} x ({N(widths)} x {e} B{(mask > 0 ? $" + 2 x {N(h)} x 1 B masks" : "")}) + {scoresFormula}";
        return (bytes, formula);
    }

    private static (long Count, string Formula) Parameters(TransformerShape model)
    {
        ArgumentNullException.ThrowIfNull(model);
        AtLeast(model.Layers, 1, "model.Layers");
        AtLeast(model.ModelDim, 1, "model.ModelDim");
        AtLeast(model.Heads, 1, "model.Heads");
        AtLeast(model.KvHeads, 1, "model.KvHeads");
        AtLeast(model.FfnDim, 1, "model.FfnDim");
        AtLeast(model.Vocab, 1, "model.Vocab");
        if (model.ModelDim % model.Heads != 0)
            throw new ArgumentOutOfRangeException("model.Heads", model.Heads, $"model.Heads = {model.Heads}: must divide model.ModelDim = {model.ModelDim}");
        if (model.Heads % model.KvHeads != 0)
            throw new ArgumentOutOfRangeException("model.KvHeads", model.KvHeads, $"model.KvHeads = {model.KvHeads}: must divide model.Heads = {model.Heads}");
        long d = model.ModelDim, kv = (long)model.KvHeads * model.HeadDim, f = model.FfnDim, v = model.Vocab;
        long attention, ffn, norms = 2 * d, count;
        try
        {
            checked
            {
                attention = 2 * d * d + 2 * d * kv;
                ffn = (model.GatedFfn ? 3 : 2) * d * f;
                count = model.Layers * (attention + ffn + norms) + (model.TiedEmbeddings ? 1 : 2) * v * d + d;
            }
        }
        catch (OverflowException)
        {
            throw new OverflowException($"the parameter count of {model} exceeds 2^63 - 1");
        }
        string formula = $"{N(count)} params ({model.Layers} x (attn {N(attention)} + ffn {N(ffn)} + norms {N(norms)}) + " +
                         $"{(model.TiedEmbeddings ? "tied" : "2 x")} embeddings {N(v * d)} + final norm {N(d)})";
        return (count, formula);
    }

    private static int FloatSize(DType dtype, string name) => dtype is DType.Float32 or DType.Float16 or DType.BFloat16
        ? dtype.SizeOf()
        : throw new ArgumentOutOfRangeException(name, dtype, $"{name} = {dtype}: must be Float32, Float16 or BFloat16");
}
