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
    /// The emulated CPU accelerator: one multiprocessor of 8 warps of 32 threads. 256 threads per group is what the tiles
    /// of linalg.cl demand exactly (ILGPU's default CPU device offers 16); warps of 32 make warp-sized strides behave as
    /// on an NVIDIA GPU. Each thread of a group is an OS thread, so more multiprocessors would only add threads.
    /// </summary>
    public static readonly CPUDevice CpuDevice = new(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 8, numMultiprocessors: 1);

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
