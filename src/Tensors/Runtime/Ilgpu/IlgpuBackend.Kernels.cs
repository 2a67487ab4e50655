using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Runtime.Ilgpu;

/// <summary>
/// The primitives every op family of <see cref="KernelBackend"/> launches through, on ILGPU: the [Entry] method of each
/// declaration loaded as an explicitly grouped kernel and launched through a compiled launcher; fills; and host data
/// staged by blocking copies.
/// </summary>
internal sealed unsafe partial class IlgpuBackend
{
    /// <summary>What one declared kernel became on this accelerator.</summary>
    private sealed record Built(Accelerator Accelerator, Kernel Kernel, IlgpuLauncher Launch, KernelLimits Limits);

    private readonly ConcurrentDictionary<int, Built> _built = new();

    private readonly object _buildGate = new();


    /// <summary>
    /// Loads the kernel's [Entry] method on the accelerator (compiled by ILGPU on first load), and refuses a kernel this
    /// accelerator cannot run as the reference demands: an exact group size beyond what it holds, or a need its math
    /// cannot meet (<see cref="UnmetNeed"/>).
    /// </summary>
    protected override KernelLimits Prepare(DeviceKernel kernel) => Build(kernel).Limits;

    /// <summary>What <see cref="Prepare"/> says of <paramref name="kernel"/>, for tests that hold an accelerator to what the kernels demand.</summary>
    internal KernelLimits Limits(DeviceKernel kernel) => Prepare(kernel);

    private Built Build(DeviceKernel kernel)
    {
        if (_built.TryGetValue(kernel.Slot, out Built? built)) return built;
        lock (_buildGate)
        {
            if (_built.TryGetValue(kernel.Slot, out built)) return built;
            Accelerator accelerator = Accelerator;
            // The emulated CPU runs an exact group wider than its own on its wide twin (see IlgpuRuntime.WideCpuDevice).
            if (kernel.GroupThreads > accelerator.MaxNumThreadsPerGroup && _wide is not null) accelerator = Wide;
            if (UnmetNeed(kernel, accelerator) is { } unmet)
                throw new NativeTensorException($"ilgpu: '{Name}' ({Spec}) cannot run {kernel.Entry} as the reference demands: {unmet.Why}; run it on the cpu instead")
                { ErrorName = unmet.Name };
            if (kernel.GroupThreads > accelerator.MaxNumThreadsPerGroup)
                throw new NativeTensorException(
                    $"ilgpu: '{Name}' ({Spec}) runs groups of at most {accelerator.MaxNumThreadsPerGroup} threads, but {kernel.Entry} needs {kernel.GroupThreads}")
                { ErrorName = "MaxNumThreadsPerGroup" };
            MethodInfo method = IlgpuEntries.Find(kernel);
            CheckSignature(kernel, method);
            Kernel loaded;
            IlgpuLauncher launch;
            try
            {
                lock (_gate)
                {
                    accelerator.Bind();
                    loaded = accelerator.LoadKernel(method);
                }
                launch = IlgpuLaunchers.Create(loaded, method);
            }
            catch (Exception e) when (e is not NativeTensorException)
            {
                throw IlgpuErrors.From(e, Name, $"compiling {kernel.Entry} ({method.DeclaringType?.Name}.{method.Name})");
            }
            // A block of one warp caps a GPU multiprocessor at half its threads (at most 32 blocks each), as on CUDA.
            int fewest = accelerator.AcceleratorType == AcceleratorType.CPU ? accelerator.WarpSize : 2 * accelerator.WarpSize;
            var limits = new KernelLimits(accelerator.MaxNumThreadsPerGroup, Math.Min(fewest, accelerator.MaxNumThreadsPerGroup),
                (long)accelerator.NumMultiprocessors * accelerator.MaxNumThreadsPerMultiprocessor);
            return _built.GetOrAdd(kernel.Slot, new Built(accelerator, loaded, launch, limits));
        }
    }

    /// <summary>The emulated CPU's wide twin, created on first use.</summary>
    private Accelerator Wide
    {
        get
        {
            try
            {
                return _wide!.Value;
            }
            catch (Exception e) when (e is not NativeTensorException)
            {
                throw IlgpuErrors.From(e, Name, "creating the emulated CPU for wide groups");
            }
        }
    }

    /// <summary>
    /// The first of <see cref="DeviceKernel.Needs"/> this accelerator cannot guarantee, or null. The emulated CPU runs the
    /// kernels as .NET code (IEEE binary32: subnormals kept, divide and square root correctly rounded). ILGPU's PTX keeps
    /// subnormals and emits <c>div.rn.f32</c> and <c>sqrt.rn.f32</c> unless the context asks for fast math. Its OpenCL
    /// builds with nothing but <c>-cl-std</c>, so a divide may be 2.5 ulp off and subnormals may flush: refused.
    /// </summary>
    private static (string Name, string Why)? UnmetNeed(DeviceKernel kernel, Accelerator accelerator)
    {
        if (kernel.Needs == KernelNeeds.None) return null;
        return accelerator.AcceleratorType switch
        {
            AcceleratorType.CPU => null,
            AcceleratorType.Cuda when accelerator.Context.Properties.MathMode == MathMode.Fast =>
                ("MathMode.Fast", "its context uses fast math, which flushes subnormals and divides approximately"),
            AcceleratorType.Cuda => null,
            _ => ("CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT unavailable",
                "ILGPU builds OpenCL programs without -cl-fp32-correctly-rounded-divide-sqrt and cannot promise kept subnormals"),
        };
    }

    /// <summary>Throws unless the method's parameters match the declaration's in number and kind, so a kernel written out of order fails at its first load.</summary>
    private static void CheckSignature(DeviceKernel kernel, MethodInfo method)
    {
        ParameterInfo[] parameters = method.GetParameters();
        bool matches = parameters.Length == kernel.Parameters.Length;
        for (int i = 0; matches && i < parameters.Length; i++) matches = IlgpuEntries.KindOf(parameters[i].ParameterType) == kernel.Parameters[i].Kind;
        if (!matches)
            throw new NativeTensorException(
                $"ilgpu: {method.DeclaringType?.Name}.{method.Name} ({string.Join(", ", parameters.Select(p => p.ParameterType.Name))}) does not match {kernel} " +
                $"({string.Join(", ", kernel.Parameters.Select(p => p.Kind))})")
            { ErrorName = "EntryMismatch" };
    }

    /// <summary>
    /// Holds every buffer argument, then launches with each buffer's byte view and each scalar at its position; ILGPU's
    /// launch has taken the views by value when it returns (a CUDA launch copies its arguments), so the holds end here.
    /// </summary>
    protected override void Enqueue(DeviceKernel kernel, in LaunchShape shape, ReadOnlySpan<KernelArgument> arguments)
    {
        var views = new ArrayView<byte>[arguments.Length];
        var scalars = new long[arguments.Length];
        var held = new bool[arguments.Length];
        try
        {
            for (int i = 0; i < arguments.Length; i++)
            {
                if (arguments[i].Buffer is { } buffer)
                {
                    IlgpuBuffer own = Own(buffer, 0, 0, kernel.Entry);
                    own.DangerousAddRef(ref held[i]);
                    views[i] = own.View;
                }
                else scalars[i] = arguments[i].Value;
            }
            Built built = Build(kernel);
            var config = new KernelConfig(new Index2D(checked((int)shape.GroupsX), checked((int)shape.GroupsY)), new Index2D(shape.GroupThreads, 1));
            Run(built.Accelerator, $"launching {kernel.Entry} over {shape}", () => built.Launch(built.Accelerator.DefaultStream, config, views, scalars));
        }
        finally
        {
            for (int i = 0; i < arguments.Length; i++)
                if (held[i]) arguments[i].Buffer!.DangerousRelease();
        }
    }

    /// <summary>
    /// One declared kernel launched as the families launch it (arguments checked against the declaration, then
    /// <see cref="Enqueue"/>), for tests and benchmarks that drive a single kernel; it skips the families' range checks,
    /// so callers pass buffers that hold what the launch touches.
    /// </summary>
    internal void LaunchDirectly(DeviceKernel kernel, LaunchShape shape, params KernelArgument[] arguments)
    {
        kernel.Check(arguments);
        Enqueue(kernel, shape, arguments);
    }

    /// <summary>
    /// A byte memset where the word's four bytes agree (0, the usual case), else blocking copies from a host block of the
    /// word: ILGPU has no 32-bit fill, and the flags this fills are a word or a batch of rows.
    /// </summary>
    protected override void Fill(DeviceBuffer buffer, uint value, long words)
    {
        IlgpuBuffer target = Own(buffer, 0, checked(words * sizeof(uint)), nameof(buffer));
        if (words == 0) return;
        using var lease = new Lease(target);
        if (value == (value & 0xFF) * 0x01010101u)
        {
            Run("filling", () => target.View.SubView(0, words * sizeof(uint)).MemSet(Stream, (byte)value));
            return;
        }
        uint[] block = new uint[Math.Min(words, 1 << 16)];
        Array.Fill(block, value);
        for (long first = 0; first < words; first += block.Length)
        {
            long count = Math.Min(block.Length, words - first);
            Write(target, first * sizeof(uint), MemoryMarshal.AsBytes(block.AsSpan(0, (int)count)));
        }
    }

    protected override DeviceBuffer Stage(ReadOnlySpan<long> values) => StageByBlockingWrite(values, drainBeforeFree: true);

    protected override DeviceBuffer AllocateScratch(long bytes) => IlgpuBuffer.Allocate(this, bytes, counted: false);
}
