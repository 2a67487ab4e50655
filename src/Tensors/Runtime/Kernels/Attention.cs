using System.Collections.Immutable;
using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// The kernels of <c>kernels/attention.cl</c> (see its header for the math, the tiling and the launch): the forward
/// and the dq kernel take one group of exactly <see cref="GroupThreads"/> threads per <see cref="QueryTile"/> queries of
/// one query head, the dk/dv kernel one group per <see cref="KeyTile"/> keys of one key/value head, the groups numbered
/// in one dimension; the delta kernel is grid-stride over the query rows.
/// </summary>
internal static class AttentionKernels
{
    public const string Source = "attention.cl";

    /// <summary>Queries per group of the forward and dq kernels: NT_BQ in attention.cl.</summary>
    public const int QueryTile = 16;

    /// <summary>Keys per tile, and per group of the dk/dv kernel: NT_BK in attention.cl.</summary>
    public const int KeyTile = 16;

    /// <summary>Threads per group, exactly (the tiled kernels declare it with GROUP_SIZE): NT_THREADS in attention.cl.</summary>
    public const int GroupThreads = 256;

    /// <summary>The most groups one launch takes: CUDA's gridDim.x limit (see <see cref="LinalgKernels.MaxGroups"/>).</summary>
    public const long MaxGroups = int.MaxValue;

    private static readonly string[] Types = ["f32", "f16", "bf16"];

    /// <summary>The forward's geometry after its buffers, in this order: the key store's rows and first row included.</summary>
    private static readonly ImmutableArray<KernelParameter> Geometry =
    [
        Int32("query_heads"), Int32("kv_heads"), Int32("queries"), Int32("keys"), Int32("head_dim"), Int32("key_rows"),
        Int32("key_first"), Int32("window"), UInt32("flags"), UInt32("scale_bits"),
    ];

    /// <summary>
    /// The backward's geometry: dense keys, so no store rows or first row (dk/dv's eight buffers and these eight scalars
    /// are the 16 arguments a launch may pass).
    /// </summary>
    private static readonly ImmutableArray<KernelParameter> DenseGeometry =
    [
        Int32("query_heads"), Int32("kv_heads"), Int32("queries"), Int32("keys"), Int32("head_dim"), Int32("window"),
        UInt32("flags"), UInt32("scale_bits"),
    ];

    private static readonly DeviceKernel[] Forwards =
        [.. from t in Types select new DeviceKernel(Source, $"attention_forward_{t}",
            [Buffer("q"), Buffer("k"), Buffer("v"), Buffer("o"), Buffer("lse"), .. Geometry], groupThreads: GroupThreads)];

    private static readonly DeviceKernel[] Deltas =
        [.. from t in Types select new DeviceKernel(Source, $"attention_delta_{t}",
            [Buffer("d_o"), Buffer("o"), Buffer("delta"), Int64("rows"), Int32("head_dim")])];

    private static readonly DeviceKernel[] Dqs =
        [.. from t in Types select new DeviceKernel(Source, $"attention_dq_{t}",
            [Buffer("d_o"), Buffer("q"), Buffer("k"), Buffer("v"), Buffer("lse"), Buffer("delta"), Buffer("dq"), .. DenseGeometry],
            groupThreads: GroupThreads)];

    private static readonly DeviceKernel[] DkDvs =
        [.. from t in Types select new DeviceKernel(Source, $"attention_dkdv_{t}",
            [Buffer("d_o"), Buffer("q"), Buffer("k"), Buffer("v"), Buffer("lse"), Buffer("delta"), Buffer("dk"), Buffer("dv"), .. DenseGeometry],
            groupThreads: GroupThreads)];

    /// <summary><c>attention_forward_&lt;t&gt;</c>.</summary>
    public static DeviceKernel Forward(DType dtype) => Forwards[Index(dtype)];

    /// <summary><c>attention_delta_&lt;t&gt;</c>.</summary>
    public static DeviceKernel Delta(DType dtype) => Deltas[Index(dtype)];

    /// <summary><c>attention_dq_&lt;t&gt;</c>.</summary>
    public static DeviceKernel Dq(DType dtype) => Dqs[Index(dtype)];

    /// <summary><c>attention_dkdv_&lt;t&gt;</c>.</summary>
    public static DeviceKernel DkDv(DType dtype) => DkDvs[Index(dtype)];

    public static IEnumerable<DeviceKernel> All => [.. Forwards, .. Deltas, .. Dqs, .. DkDvs];

    /// <summary>The kernels' <c>flags</c>: bit 0 causal, bit 1 write the log-sum-exp.</summary>
    public static uint Flags(bool causal, bool writeLogSumExp) => (causal ? 1u : 0u) | (writeLogSumExp ? 2u : 0u);

    /// <summary>Groups of the forward and dq kernels: every tile of <see cref="QueryTile"/> queries of every (batch, query head).</summary>
    public static long QueryGroups(in AttentionShape shape) =>
        Checked(checked((long)shape.Batch * shape.QueryHeads * Tiles(shape.Queries, QueryTile)), "query tiles", shape);

    /// <summary>Groups of the dk/dv kernel: every tile of <see cref="KeyTile"/> keys of every (batch, key/value head).</summary>
    public static long KeyGroups(in AttentionShape shape) =>
        Checked(checked((long)shape.Batch * shape.KvHeads * Tiles(shape.Keys, KeyTile)), "key tiles", shape);

    private static long Tiles(int extent, int tile) => ((long)extent + tile - 1) / tile;

    private static long Checked(long groups, string what, in AttentionShape shape) => groups <= MaxGroups
        ? groups
        : throw new ArgumentOutOfRangeException(nameof(shape), groups, $"attention {shape} needs {groups} {what}: more than {MaxGroups} groups in one launch");

    private static int Index(DType dtype) => dtype switch
    {
        DType.Float32 => 0,
        DType.Float16 => 1,
        DType.BFloat16 => 2,
        _ => throw new ArgumentException($"no attention kernel for {dtype}: Float32, Float16 or BFloat16", nameof(dtype)),
    };
}

/// <summary>
/// Attention on a kernel backend: the forward is one launch; the backward is three (delta, then dq, then dk and dv, in
/// queue order), none with atomics, so its results are the same bits run to run. On CUDA's tensor cores (see
/// <c>Attention.TensorCores.cs</c>) the forward, dq and dk/dv are that file's kernels, the delta this file's.
/// </summary>
internal abstract partial class KernelBackend
{
    public override void AttentionForward(in AttentionShape shape, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        DeviceBuffer? logSumExp)
    {
        if (TryTensorCoreAttentionForward(shape, q, k, v, output, logSumExp)) return;
        CheckAttentionShape(shape);
        DeviceKernel kernel = AttentionKernels.Forward(shape.DType);
        long element = shape.DType.SizeOf();
        CheckRange(q, AttentionBytes(element, shape.Batch, shape.QueryHeads, shape.Queries, shape.HeadDim), nameof(q));
        CheckRange(k, AttentionBytes(element, shape.Batch, shape.KvHeads, shape.KeyRows, shape.HeadDim), nameof(k));
        CheckRange(v, AttentionBytes(element, shape.Batch, shape.KvHeads, shape.KeyRows, shape.HeadDim), nameof(v));
        CheckRange(output, AttentionBytes(element, shape.Batch, shape.QueryHeads, shape.Queries, shape.HeadDim), nameof(output));
        if (logSumExp is not null)
            CheckRange(logSumExp, AttentionBytes(sizeof(float), shape.Batch, shape.QueryHeads, shape.Queries), nameof(logSumExp));
        // The kernel reads q, k and v through restrict pointers while it writes the output and the log-sum-exp.
        CheckDistinct(nameof(output), output, q, k, v, logSumExp);
        if (logSumExp is not null) CheckDistinct(nameof(logSumExp), logSumExp, q, k, v);
        long groups = AttentionKernels.QueryGroups(shape);
        Prepare(kernel);
        if (groups == 0) return;
        // Without a log-sum-exp, q stands in for the lse argument: flags bit 1 is clear, so the kernel never touches it.
        Launch(kernel, LaunchShapes.Tiles(kernel, groups), q, k, v, output, logSumExp ?? q, shape.QueryHeads, shape.KvHeads,
            shape.Queries, shape.Keys, shape.HeadDim, shape.KeyRows, shape.KeyFirst, shape.Window,
            AttentionKernels.Flags(shape.Causal, logSumExp is not null), Bits(shape.Scale));
    }

    public override void AttentionBackward(in AttentionShape shape, DeviceBuffer outputGradient, DeviceBuffer q, DeviceBuffer k,
        DeviceBuffer v, DeviceBuffer output, DeviceBuffer logSumExp, DeviceBuffer delta, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv)
    {
        CheckAttentionShape(shape);
        if (!shape.IsDense)
            throw new ArgumentException($"shape reads {shape.Keys} keys from row {shape.KeyFirst} of {shape.KeyRows}: the backward takes dense keys", nameof(shape));
        // dq and dk/dv from the tensor cores where they run the call, else the portable kernels: the same arguments.
        DeviceKernel deltaKernel = AttentionKernels.Delta(shape.DType);
        (DeviceKernel dqKernel, long queryGroups, DeviceKernel dkdvKernel, long keyGroups) = TensorCoreAttentionBackward(shape)
            ?? (AttentionKernels.Dq(shape.DType), AttentionKernels.QueryGroups(shape), AttentionKernels.DkDv(shape.DType), AttentionKernels.KeyGroups(shape));
        long element = shape.DType.SizeOf();
        long queryBytes = AttentionBytes(element, shape.Batch, shape.QueryHeads, shape.Queries, shape.HeadDim);
        long keyBytes = AttentionBytes(element, shape.Batch, shape.KvHeads, shape.Keys, shape.HeadDim);
        long rowBytes = AttentionBytes(sizeof(float), shape.Batch, shape.QueryHeads, shape.Queries);
        CheckRange(outputGradient, queryBytes, nameof(outputGradient));
        CheckRange(q, queryBytes, nameof(q));
        CheckRange(k, keyBytes, nameof(k));
        CheckRange(v, keyBytes, nameof(v));
        CheckRange(output, queryBytes, nameof(output));
        CheckRange(logSumExp, rowBytes, nameof(logSumExp));
        CheckRange(delta, rowBytes, nameof(delta));
        CheckRange(dq, queryBytes, nameof(dq));
        CheckRange(dk, keyBytes, nameof(dk));
        CheckRange(dv, keyBytes, nameof(dv));
        // Every output is written while the inputs (and the other outputs) are read through restrict pointers.
        CheckDistinct(nameof(delta), delta, outputGradient, q, k, v, output, logSumExp, dq, dk, dv);
        CheckDistinct(nameof(dq), dq, outputGradient, q, k, v, output, logSumExp, dk, dv);
        CheckDistinct(nameof(dk), dk, outputGradient, q, k, v, output, logSumExp, dv);
        CheckDistinct(nameof(dv), dv, outputGradient, q, k, v, output, logSumExp);
        KernelLimits deltaLimits = Prepare(deltaKernel);
        Prepare(dqKernel);
        Prepare(dkdvKernel);
        uint flags = AttentionKernels.Flags(shape.Causal, writeLogSumExp: false);
        if (shape.QueryRows > 0)
            Launch(deltaKernel, LaunchShapes.GridStride(deltaLimits, shape.QueryRows), outputGradient, output, delta, shape.QueryRows, shape.HeadDim);
        if (queryGroups > 0)
            Launch(dqKernel, LaunchShapes.Tiles(dqKernel, queryGroups), outputGradient, q, k, v, logSumExp, delta, dq,
                shape.QueryHeads, shape.KvHeads, shape.Queries, shape.Keys, shape.HeadDim, shape.Window, flags, Bits(shape.Scale));
        if (keyGroups > 0)
            Launch(dkdvKernel, LaunchShapes.Tiles(dkdvKernel, keyGroups), outputGradient, q, k, v, logSumExp, delta, dk, dv,
                shape.QueryHeads, shape.KvHeads, shape.Queries, shape.Keys, shape.HeadDim, shape.Window, flags, Bits(shape.Scale));
    }

    /// <summary>
    /// The rules the kernels' indexing rests on (the ops check them first; an internal caller must not get past them):
    /// sizes not negative, at least one key/value head dividing the query heads, 1 &lt;= D &lt;= 256, the keys inside the
    /// store's rows and its first row inside it, a window not negative.
    /// </summary>
    private static void CheckAttentionShape(in AttentionShape shape)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(shape.Batch, "shape.Batch");
        ArgumentOutOfRangeException.ThrowIfNegative(shape.Queries, "shape.Queries");
        ArgumentOutOfRangeException.ThrowIfNegative(shape.Keys, "shape.Keys");
        ArgumentOutOfRangeException.ThrowIfNegative(shape.Window, "shape.Window");
        if (shape.KvHeads < 1 || shape.QueryHeads < 0 || shape.QueryHeads % shape.KvHeads != 0)
            throw new ArgumentException($"shape has {shape.QueryHeads} query heads and {shape.KvHeads} key/value heads: a multiple of at least one is needed", nameof(shape));
        if (shape.HeadDim < 1 || shape.HeadDim > Attention.MaxHeadDim)
            throw new ArgumentException($"shape.HeadDim = {shape.HeadDim}: must be from 1 to {Attention.MaxHeadDim}", nameof(shape));
        if (shape.Keys > shape.KeyRows || shape.KeyFirst < 0 || (shape.KeyRows > 0 && shape.KeyFirst >= shape.KeyRows))
            throw new ArgumentException($"shape reads {shape.Keys} keys from row {shape.KeyFirst} of {shape.KeyRows}: need keys <= rows and 0 <= first < rows", nameof(shape));
    }

    /// <summary>The product of the extents times the element size, checked: it sizes a buffer range, so it may not wrap.</summary>
    private static long AttentionBytes(long element, params ReadOnlySpan<int> extents)
    {
        long bytes = element;
        foreach (int extent in extents) bytes = checked(bytes * extent);
        return bytes;
    }

    /// <summary>Throws when <paramref name="written"/> is also one of <paramref name="others"/> (null entries are skipped).</summary>
    private static void CheckDistinct(string name, DeviceBuffer written, params ReadOnlySpan<DeviceBuffer?> others)
    {
        foreach (DeviceBuffer? other in others)
            if (ReferenceEquals(written, other))
                throw new ArgumentException($"{name} is also another argument of the call: attention would read what it overwrites", name);
    }
}
