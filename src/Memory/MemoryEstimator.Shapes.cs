namespace NativeTensor.Memory;

/// <summary>A decoder-only transformer's dimensions, as <see cref="MemoryEstimator"/> counts them.</summary>
/// <remarks>
/// Parameters counted: per layer Q and O (d x d each), K and V (d x KvHeads * HeadDim each), the feed-forward
/// matrices (2 x d x FfnDim, or 3 for a gated one such as SwiGLU) and two norm weights (d each); then the token
/// embedding (Vocab x d), a separate output head unless tied (Vocab x d), and a final norm (d). Linear and norm biases
/// and learned position embeddings are not counted (RoPE-style models have neither; where present they are under
/// 0.1% of the parameters at d &gt;= 512).
/// </remarks>
/// <param name="Layers">Transformer blocks, L.</param>
/// <param name="ModelDim">Hidden size h (d).</param>
/// <param name="Heads">Attention (query) heads a; must divide ModelDim.</param>
/// <param name="KvHeads">Key/value heads (grouped-query attention; = Heads for multi-head, 1 for multi-query); must divide Heads.</param>
/// <param name="FfnDim">Feed-forward inner size f (4h in GPT).</param>
/// <param name="Vocab">Vocabulary size V.</param>
/// <param name="TiedEmbeddings">Whether the output head shares the token embedding's weights.</param>
/// <param name="GatedFfn">Whether the feed-forward block is gated (three matrices, SwiGLU) rather than two.</param>
public sealed record TransformerShape(
    int Layers, int ModelDim, int Heads, int KvHeads, int FfnDim, int Vocab, bool TiedEmbeddings = true, bool GatedFfn = false)
{
    /// <summary>ModelDim / Heads.</summary>
    public int HeadDim => ModelDim / Heads;
}

/// <summary>The optimizer whose state <see cref="MemoryEstimator.Training"/> counts.</summary>
public enum OptimizerKind
{
    /// <summary>No state (plain SGD, or inference-only fine-tuning of nothing).</summary>
    None,
    /// <summary>SGD with momentum: one Float32 buffer per parameter.</summary>
    SgdMomentum,
    /// <summary>Adam/AdamW: two Float32 moments per parameter.</summary>
    AdamW,
}

/// <summary>How a transformer is trained, for <see cref="MemoryEstimator.Training"/>.</summary>
/// <param name="Batch">Sequences per step, b.</param>
/// <param name="Sequence">Tokens per sequence, s.</param>
/// <param name="ParameterType">The working weights' type (what the forward pass reads).</param>
/// <param name="MasterType">
/// A separate master copy's type (mixed precision: Float32 beside 16-bit weights), or null for none. When it equals
/// <paramref name="ParameterType"/> the working weights are the master and no second copy is counted, so the default
/// (Float32) is right for both mixed precision and pure Float32 training (<c>ParameterType: DType.Float32</c>).
/// </param>
/// <param name="GradientType">The gradients' type.</param>
/// <param name="ActivationType">The stored activations' type (the paper's count assumes 16 bits).</param>
/// <param name="Optimizer">Whose state is kept (Float32, see <see cref="OptimizerKind"/>).</param>
/// <param name="CheckpointEvery">Activation checkpointing: keep each c-th layer's input and recompute between them; 0 = keep everything.</param>
/// <param name="LinearAttention">
/// True for memory-linear (flash-style) attention, which stores no s x s scores; false for attention that stores the
/// softmax of the scores for the backward pass.
/// </param>
/// <param name="Dropout">Whether dropout is on (one byte of mask per dropped element is stored).</param>
public sealed record TrainingSetup(
    int Batch,
    int Sequence,
    DType ParameterType = DType.BFloat16,
    DType? MasterType = DType.Float32,
    DType GradientType = DType.BFloat16,
    DType ActivationType = DType.BFloat16,
    OptimizerKind Optimizer = OptimizerKind.AdamW,
    int CheckpointEvery = 0,
    bool LinearAttention = true,
    bool Dropout = false);

/// <summary>How a transformer serves, for <see cref="MemoryEstimator.Inference"/>.</summary>
/// <param name="Batch">Sequences decoded together.</param>
/// <param name="Context">Tokens each sequence's KV cache holds.</param>
/// <param name="CacheType">The KV cache's element type.</param>
/// <param name="WeightType">The weights' element type.</param>
public sealed record InferenceSetup(int Batch, int Context, DType CacheType = DType.BFloat16, DType WeightType = DType.BFloat16);
