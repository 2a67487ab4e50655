using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace NativeTensor.Runtime.Ilgpu;

/// <summary>
/// The process's one ILGPU <see cref="Context"/> and the devices it finds. A context compiles every kernel of every
/// accelerator made from it, so there is one, created on first discovery and kept for the life of the process.
/// </summary>
internal static class IlgpuRuntime
{
    /// <summary>
    /// The emulated CPU that <c>ilgpu:cpu</c> is and that runs every kernel that takes any group size: one multiprocessor
    /// of one warp of 4 threads. The emulation runs each thread of a group as an OS thread and meets all of them at two
    /// barriers per launch, so a launch costs in proportion to the widest group ever launched on the accelerator, and
    /// with more runnable threads than cores the barriers' spinning starves the threads they wait for: 4 threads keep
    /// launches cheap (ILGPU's default of 16 made a sweep of 258 lengths take seconds) while still running several lanes
    /// of every group, so a kernel's lane arithmetic is exercised.
    /// </summary>
    public static readonly CPUDevice CpuDevice = new(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 1, numMultiprocessors: 1);

    /// <summary>
    /// The second emulated CPU behind <c>ilgpu:cpu</c>, for kernels that demand an exact group wider than
    /// <see cref="CpuDevice"/> holds: one multiprocessor of 8 warps of 32 threads, the 256 threads per group the tiles of
    /// linalg.cl need. The two share host memory, and a CPU launch returns when it is done, so a kernel on one reads
    /// what the other wrote, in order.
    /// </summary>
    public static readonly CPUDevice WideCpuDevice = new(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 8, numMultiprocessors: 1);

    private static readonly Lazy<Context> Shared = new(Create, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The context, created on first use.</summary>
    public static Context Context => Shared.Value;

    /// <summary>
    /// <see cref="MathMode.Default"/>, stated rather than left to a default: ILGPU's fast math makes PTX flush subnormals
    /// (<c>mul.ftz.f32</c>) and divide and take roots approximately (<c>div.approx.ftz.f32</c>), and kernels must round as
    /// the reference does. Profiling lets markers time the stream; ILGPU.Algorithms supplies the intrinsics kernels may use.
    /// </summary>
    private static Context Create() =>
        Context.Create(builder => builder.CPU(CpuDevice).Cuda().OpenCL().Math(MathMode.Default).Profiling().EnableAlgorithms());

    /// <summary>
    /// The devices ILGPU finds, best first: CUDA GPUs (<c>ilgpu:cuda:N</c>), OpenCL devices it can compile for
    /// (<c>ilgpu:opencl:N</c>; not PoCL's OpenCL 1.2, which ILGPU skips), then its emulated CPU (<c>ilgpu:cpu</c>). Never
    /// throws: a context that cannot be created becomes the reason <see cref="Device.UnavailableReason"/> reports.
    /// </summary>
    public static (IReadOnlyList<Backend> Found, string? Reason) Discover()
    {
        try
        {
            Context context = Context;
            var found = new List<Backend>();
            int index = 0;
            foreach (CudaDevice device in context.GetDevices<CudaDevice>()) found.Add(new IlgpuBackend(device, $"cuda:{index++}"));
            index = 0;
            foreach (CLDevice device in context.GetDevices<CLDevice>()) found.Add(new IlgpuBackend(device, $"opencl:{index++}"));
            foreach (CPUDevice device in context.GetDevices<CPUDevice>()) found.Add(new IlgpuBackend(device, "cpu"));
            return found.Count > 0 ? (found, null) : ([], "ILGPU found no accelerator");
        }
        catch (Exception e)
        {
            return ([], $"ILGPU could not start: {e.GetType().Name}: {e.Message}");
        }
    }
}
