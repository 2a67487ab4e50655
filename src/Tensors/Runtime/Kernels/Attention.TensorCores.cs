using System.Collections.Immutable;
using NativeTensor.Runtime.Cuda;
using static NativeTensor.Runtime.Kernels.KernelParameter;

namespace NativeTensor.Runtime.Kernels;

/// <summary>
/// The kernels of <c>kernels/cuda/attention.cu</c> (see its header for the math, the tiling and the extra roundings):
/// the tensor-core forward, dq and dk/dv for BFloat16 and Float16 on CUDA devices of compute capability 8.0 and newer
/// (the backward's delta is the portable kernel's). They are CUDA
/// C++ with inline PTX, so they are not in <see cref="KernelBackend.Declarations"/> (which OpenCL and ILGPU hold their
/// own kernels against): only the CUDA backend builds them, and the CUDA compile test checks them.
/// </summary>
internal static class AttentionTensorCoreKernels
{
    public const string Source = "cuda/attention.cu";

    /// <summary>Threads per group, exactly (4 warps; the kernels declare it with GROUP_SIZE): NT_THREADS in the source.</summary>
    public const int GroupThreads = 128;

    /// <summary>Queries per group of the forward and dq (16 per warp): NT_QUERIES in the source.</summary>
    public const int QueriesPerGroup = 64;

    /// <summary>Keys per group of dk/dv (16 per warp): NT_KEYS in the source.</summary>
    public const int KeysPerGroup = 64;

    /// <summary>mma.sync with bf16 operands, ldmatrix and cvt.rn.bf16x2 need sm_80 (compute capability as major * 10 + minor).</summary>
    public const int MinComputeCapability = 80;

    /// <summary>The most groups one launch takes: CUDA's gridDim.x limit.</summary>
    public const long MaxGroups = int.MaxValue;

    /// <summary>The head dimensions the forward is built for; a call takes the smallest at least its D, zero-padded.</summary>
    private static readonly int[] PaddedHeadDims = [32, 64, 96, 128, 192, 256];

    /// <summary>
    /// The head dimensions dq and dk/dv are built for: beyond 128, their accumulators (dk and dv, 16 x D each per warp)
    /// and staged tiles outgrow a thread's registers and a group's 48 KB of static shared memory, so the portable kernels
    /// run those.
    /// </summary>
    private static readonly int[] BackwardHeadDims = [32, 64, 96, 128];

    private static readonly string[] Types = ["bf16", "f16"];

    private static readonly ImmutableArray<KernelParameter> BackwardGeometry =
    [
        Int32("query_heads"), Int32("kv_heads"), Int32("queries"), Int32("keys"), Int32("head_dim"), Int32("window"), UInt32("flags"),
        UInt32("scale_bits"),
    ];

    private static readonly DeviceKernel[][] Forwards = [.. Types.Select(type => Kernels(type, "forward", PaddedHeadDims,
        [Buffer("q"), Buffer("k"), Buffer("v"), Buffer("output"), Buffer("lse"), Int32("queries"), Int32("keys"), Int32("head_dim"),
         Int32("query_heads"), Int32("kv_heads"), Int32("key_rows"), Int32("key_first"), Int32("window"), UInt32("flags"), UInt32("scale_bits")]))];

    private static readonly DeviceKernel[][] Dqs = [.. Types.Select(type => Kernels(type, "dq", BackwardHeadDims,
        [Buffer("d_o"), Buffer("q"), Buffer("k"), Buffer("v"), Buffer("lse"), Buffer("delta"), Buffer("dq"), .. BackwardGeometry]))];

    private static readonly DeviceKernel[][] DkDvs = [.. Types.Select(type => Kernels(type, "dkdv", BackwardHeadDims,
        [Buffer("d_o"), Buffer("q"), Buffer("k"), Buffer("v"), Buffer("lse"), Buffer("delta"), Buffer("dk"), Buffer("dv"), .. BackwardGeometry]))];

    /// <summary>Every kernel of <c>cuda/attention.cu</c>.</summary>
    public static IEnumerable<DeviceKernel> All => [.. Forwards.SelectMany(k => k), .. Dqs.SelectMany(k => k), .. DkDvs.SelectMany(k => k)];

    /// <summary>The forward for <paramref name="dtype"/> and head dimension <paramref name="headDim"/>, or null when there is none.</summary>
    public static DeviceKernel? Forward(DType dtype, int headDim) => Pick(Forwards, PaddedHeadDims, dtype, headDim);

    /// <summary>dq for <paramref name="dtype"/> and head dimension <paramref name="headDim"/>, or null when there is none.</summary>
    public static DeviceKernel? Dq(DType dtype, int headDim) => Pick(Dqs, BackwardHeadDims, dtype, headDim);

    /// <summary>dk/dv for <paramref name="dtype"/> and head dimension <paramref name="headDim"/>, or null when there is none.</summary>
    public static DeviceKernel? DkDv(DType dtype, int headDim) => Pick(DkDvs, BackwardHeadDims, dtype, headDim);

    /// <summary>Groups of a forward or dq: ceil(N / 64) query blocks for each of the B Hq heads.</summary>
    public static long Groups(in AttentionShape shape) =>
        (long)shape.Batch * shape.QueryHeads * ((shape.Queries + (long)QueriesPerGroup - 1) / QueriesPerGroup);

    /// <summary>Groups of dk/dv: ceil(M / 64) key blocks for each of the B Hkv key/value heads.</summary>
    public static long KeyGroups(in AttentionShape shape) =>
        (long)shape.Batch * shape.KvHeads * ((shape.Keys + (long)KeysPerGroup - 1) / KeysPerGroup);

    /// <summary>The kernels' <c>flags</c>: bit 0 causal, bit 1 write the log-sum-exp.</summary>
    public static uint Flags(bool causal, bool logSumExp) => (causal ? 1u : 0u) | (logSumExp ? 2u : 0u);

    private static DeviceKernel[] Kernels(string type, string what, int[] dims, ImmutableArray<KernelParameter> parameters) =>
        [.. dims.Select(padded => new DeviceKernel(Source, $"attention_{what}_{type}_d{padded}", parameters, groupThreads: GroupThreads))];

    /// <summary>The kernel of <paramref name="kernels"/> (by dtype, then by padded D) for the smallest padded D at least <paramref name="headDim"/>.</summary>
    private static DeviceKernel? Pick(DeviceKernel[][] kernels, int[] dims, DType dtype, int headDim)
    {
        int type = dtype switch { DType.BFloat16 => 0, DType.Float16 => 1, _ => -1 };
        if (type < 0 || headDim < 1) return null;
        int index = Array.FindIndex(dims, padded => padded >= headDim);
        return index < 0 ? null : kernels[type][index];
    }
}

/// <summary>
/// Attention on tensor cores: the CUDA backend on an sm_80+ GPU runs BFloat16 and Float16 forwards here, and their
/// backward's dq and dk/dv for D up to 128; everything else (Float32, older GPUs, OpenCL, ILGPU, D past 128 in the
/// backward) falls through to the portable kernels of <c>Attention.cs</c>.
/// </summary>
internal abstract partial class KernelBackend
{
    /// <summary>
    /// Every kernel of <c>kernels/cuda/*.cu</c>: CUDA C++ that only the CUDA backend builds, kept apart from
    /// <see cref="Declarations"/>, whose kernels OpenCL reads as OpenCL C and ILGPU mirrors as C# entries.
    /// </summary>
    public static IEnumerable<DeviceKernel> CudaOnlyDeclarations => AttentionTensorCoreKernels.All;

    /// <summary>
    /// Runs the forward on <c>cuda/attention.cu</c> when this is the CUDA backend on a GPU of compute capability 8.0 or
    /// newer and q is BFloat16 or Float16 (any D up to <see cref="Attention.MaxHeadDim"/>); false, touching nothing,
    /// otherwise. Its result differs from the Float32 path's only by P's rounding to the input dtype before P V (the
    /// kernel's header states the bound).
    /// </summary>
    private bool TryTensorCoreAttentionForward(in AttentionShape shape, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        DeviceBuffer? logSumExp)
    {
        if (Kind != DeviceKind.Cuda || this is not CudaBackend { ComputeCapability: >= AttentionTensorCoreKernels.MinComputeCapability })
            return false;
        DeviceKernel? kernel = AttentionTensorCoreKernels.Forward(shape.DType, shape.HeadDim);
        long groups = AttentionTensorCoreKernels.Groups(shape);
        if (kernel is null || groups > AttentionTensorCoreKernels.MaxGroups) return false;
        CheckAttentionForward(shape, q, k, v, output, logSumExp);
        Prepare(kernel);
        // Keys == 0 needs no special case: the band is empty, so every query gets 0 and -inf from the kernel itself.
        if (groups == 0) return true;
        Launch(kernel, LaunchShapes.Tiles(kernel, groups),
            q, k, v, output, logSumExp ?? output, shape.Queries, shape.Keys, shape.HeadDim, shape.QueryHeads, shape.KvHeads, shape.KeyRows,
            shape.KeyFirst, shape.Window, AttentionTensorCoreKernels.Flags(shape.Causal, logSumExp is not null), Bits(shape.Scale));
        return true;
    }

    /// <summary>
    /// dq and dk/dv of <c>cuda/attention.cu</c>, with their group counts, when this is the CUDA backend on a GPU of compute
    /// capability 8.0 or newer, q is BFloat16 or Float16 and D is at most 128; null otherwise (the portable kernels run
    /// the call). The caller checks the buffers, launches the delta kernel first and then these two with the portable
    /// kernels' arguments, which they share. Their results differ from the Float32 path's by P's and dS's rounding to the
    /// input dtype before the products that take them (the kernels' header states the bound).
    /// </summary>
    private (DeviceKernel Dq, long QueryGroups, DeviceKernel DkDv, long KeyGroups)? TensorCoreAttentionBackward(in AttentionShape shape)
    {
        if (Kind != DeviceKind.Cuda || this is not CudaBackend { ComputeCapability: >= AttentionTensorCoreKernels.MinComputeCapability })
            return null;
        DeviceKernel? dq = AttentionTensorCoreKernels.Dq(shape.DType, shape.HeadDim), dkdv = AttentionTensorCoreKernels.DkDv(shape.DType, shape.HeadDim);
        long queryGroups = AttentionTensorCoreKernels.Groups(shape), keyGroups = AttentionTensorCoreKernels.KeyGroups(shape);
        if (dq is null || dkdv is null || queryGroups > AttentionTensorCoreKernels.MaxGroups || keyGroups > AttentionTensorCoreKernels.MaxGroups)
            return null;
        return (dq, queryGroups, dkdv, keyGroups);
    }

    /// <summary>
    /// What keeps the forward in bounds whatever an internal caller passes: every buffer is this backend's and large
    /// enough, the geometry is one the kernel's index contract takes, and no output is also an input (the kernel reads
    /// q, k and v through restrict pointers while it writes).
    /// </summary>
    private void CheckAttentionForward(in AttentionShape shape, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output,
        DeviceBuffer? logSumExp)
    {
        if (shape.Batch < 0 || shape.Queries < 0 || shape.Keys < 0 || shape.HeadDim < 1 || shape.QueryHeads < 1 || shape.KvHeads < 1
            || shape.QueryHeads % shape.KvHeads != 0 || shape.KeyFirst < 0 || shape.Keys > shape.KeyRows
            || (shape.KeyRows > 0 && shape.KeyFirst >= shape.KeyRows) || shape.Window < 0)
            throw new ArgumentException($"attention geometry {shape} is outside the kernel's index contract", nameof(shape));
        long size = shape.DType.SizeOf();
        CheckRange(q, checked(shape.QueryElements * size), nameof(q));
        CheckRange(k, checked(shape.KeyElements * size), nameof(k));
        CheckRange(v, checked(shape.KeyElements * size), nameof(v));
        CheckRange(output, checked(shape.QueryElements * size), nameof(output));
        if (logSumExp is not null) CheckRange(logSumExp, checked(shape.QueryRows * sizeof(float)), nameof(logSumExp));
        if (ReferenceEquals(output, q) || ReferenceEquals(output, k) || ReferenceEquals(output, v))
            throw new ArgumentException("output is one of the inputs: attention would read what it overwrites", nameof(output));
        if (logSumExp is not null && (ReferenceEquals(logSumExp, q) || ReferenceEquals(logSumExp, k) || ReferenceEquals(logSumExp, v)
            || ReferenceEquals(logSumExp, output)))
            throw new ArgumentException("logSumExp is an input or the output: attention would read what it overwrites", nameof(logSumExp));
    }
}
