using NativeTensor.Runtime;
using NativeTensor.Runtime.Cpu;
using NativeTensor.Runtime.Cuda;
using NativeTensor.Runtime.Ilgpu;
using NativeTensor.Runtime.OpenCl;

namespace NativeTensor;

/// <summary>Which runtime a <see cref="Device"/> belongs to.</summary>
public enum DeviceKind
{
    /// <summary>C# SIMD kernels on the host's cores.</summary>
    Cpu,
    /// <summary>OpenCL C kernels through <c>libOpenCL.so.1</c>.</summary>
    OpenCl,
    /// <summary>CUDA C kernels compiled by NVRTC, launched through <c>libcuda.so.1</c>.</summary>
    Cuda,
    /// <summary>
    /// ILGPU C# kernels on one of ILGPU's accelerators: <c>ilgpu:cuda:N</c>, <c>ilgpu:opencl:N</c>, or its emulated
    /// <c>ilgpu:cpu</c> (see <see cref="NativeTensor.Ilgpu"/> for interop with a caller's own ILGPU code).
    /// </summary>
    Ilgpu,
}

/// <summary>
/// A place where tensors live and kernels run. Devices are discovered once per process; a runtime whose
/// library is missing simply contributes no device (see <see cref="UnavailableReason"/>), it never throws.
/// </summary>
public sealed class Device
{
    private static readonly Lazy<Device> CpuDevice = new(() => new Device(new CpuBackend(), 0));
    private static readonly Lazy<Discovery> Discovered = new(Discover);

    internal Device(Backend backend, int index)
    {
        Backend = backend;
        Index = index;
    }

    internal Backend Backend { get; }

    /// <summary>The runtime this device belongs to.</summary>
    public DeviceKind Kind => Backend.Kind;

    /// <summary>The position among devices of the same kind, as in <c>opencl:1</c>; for ILGPU, among its devices of one runtime (<c>ilgpu:cuda:1</c>).</summary>
    public int Index { get; }

    /// <summary>The hardware's name, as its runtime reports it.</summary>
    public string Name => Backend.Name;

    /// <summary>
    /// The spec that <see cref="Get"/> accepts for this device: <c>cpu</c>, <c>opencl:0</c>, <c>cuda:0</c>,
    /// <c>ilgpu:cuda:0</c>, <c>ilgpu:opencl:0</c>, <c>ilgpu:cpu</c>; <c>ilgpu:external</c> for a caller's own ILGPU
    /// accelerator (<see cref="NativeTensor.Ilgpu.DeviceOf"/>), which <see cref="Get"/> does not find.
    /// </summary>
    public string Spec => Backend switch
    {
        IlgpuBackend ilgpu => ilgpu.Spec,
        _ when Kind == DeviceKind.Cpu => "cpu",
        _ => $"{KindName(Kind)}:{Index}",
    };

    /// <summary>Bytes of memory the device reports in total.</summary>
    public long TotalMemory => Backend.TotalMemory;

    /// <summary>
    /// Bytes free on the device now, as its driver reports them (CUDA: <c>cuMemGetInfo</c>), or null where the runtime
    /// cannot say: OpenCL has no portable query, nor do ILGPU's accelerators share one, and for the CPU ask <c>NativeTensor.Memory.MemoryBudget</c>, which
    /// reads the kernel's and the container's limits.
    /// </summary>
    /// <exception cref="NativeTensorException">The driver failed (the message carries its error name).</exception>
    public long? FreeMemory => Backend.FreeMemory;

    /// <summary>
    /// Bytes this process holds in live tensors on the device: buffers allocated and not yet freed. Views of memory owned
    /// elsewhere (mapped files, a file-backed KV cache) are not allocations and are not counted.
    /// </summary>
    public long AllocatedBytes => Backend.LiveBytes;

    /// <summary>The host CPU; always available.</summary>
    public static Device Cpu => CpuDevice.Value;

    /// <summary>
    /// The device named by the environment variable <c>NATIVETENSOR_DEVICE</c> (<c>cpu</c>, <c>opencl</c>, <c>ilgpu:cpu</c>,
    /// <c>cuda:1</c>, ...), or <see cref="Cpu"/> when it is unset.
    /// </summary>
    /// <exception cref="ArgumentException">The variable is not a device spec.</exception>
    /// <exception cref="NativeTensorException">The variable names a device that is not available.</exception>
    public static Device Default =>
        Environment.GetEnvironmentVariable("NATIVETENSOR_DEVICE") is { Length: > 0 } spec ? Get(spec) : Cpu;

    /// <summary>
    /// Every device found in this process: the CPU first, then OpenCL devices, then CUDA devices, then ILGPU's (its CUDA
    /// GPUs, its OpenCL devices, its emulated CPU).
    /// </summary>
    public static IReadOnlyList<Device> Available => Discovered.Value.Devices;

    /// <summary>Why no device of <paramref name="kind"/> is available (the missing library, no platform...), or null if one is.</summary>
    public static string? UnavailableReason(DeviceKind kind) =>
        Discovered.Value.Reasons.TryGetValue(kind, out string? reason) ? reason : null;

    /// <summary>
    /// Finds a device by spec: <c>kind[:index]</c> with kind <c>cpu</c>, <c>opencl</c> or <c>cuda</c>; or
    /// <c>ilgpu:cpu</c>, <c>ilgpu:cuda[:index]</c>, <c>ilgpu:opencl[:index]</c>, and <c>ilgpu</c> alone for ILGPU's
    /// first device (a GPU when it has one). The index defaults to 0.
    /// </summary>
    /// <exception cref="ArgumentException">The spec does not parse.</exception>
    /// <exception cref="NativeTensorException">No such device is available; the message says why.</exception>
    public static Device Get(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string[] parts = spec.Trim().ToLowerInvariant().Split(':');
        if (parts[0] == "ilgpu") return GetIlgpu(spec, parts);
        DeviceKind? kind = parts[0] switch { "cpu" => DeviceKind.Cpu, "opencl" => DeviceKind.OpenCl, "cuda" => DeviceKind.Cuda, _ => null };
        int index = 0;
        if (kind is null || parts.Length > 2 || (parts.Length == 2 && (!int.TryParse(parts[1], out index) || index < 0)))
            throw new ArgumentException($"device spec '{spec}' is not cpu, opencl or cuda with an optional ':index', nor an ilgpu spec", nameof(spec));
        if (kind == DeviceKind.Cpu)
            return index == 0 ? Cpu : throw new NativeTensorException($"device '{spec}': there is one cpu device, cpu:0");

        Device[] ofKind = Available.Where(d => d.Kind == kind).ToArray();
        if (index < ofKind.Length) return ofKind[index];
        string why = ofKind.Length == 0
            ? UnavailableReason(kind.Value) ?? "none found"
            : $"only {ofKind.Length} found ({string.Join(", ", ofKind.Select(d => d.Spec))})";
        throw new NativeTensorException($"device '{spec}' is not available: {why}");
    }

    /// <summary>The ILGPU half of <see cref="Get"/>: <c>ilgpu</c>, <c>ilgpu:cpu[:0]</c>, <c>ilgpu:cuda[:index]</c>, <c>ilgpu:opencl[:index]</c>.</summary>
    private static Device GetIlgpu(string spec, string[] parts)
    {
        int index = 0;
        string? runtime = parts.Length >= 2 ? parts[1] : null;
        if (parts.Length > 3 || runtime is not (null or "cpu" or "cuda" or "opencl")
            || (parts.Length == 3 && (!int.TryParse(parts[2], out index) || index < 0)))
            throw new ArgumentException($"device spec '{spec}' is not ilgpu, ilgpu:cpu, or ilgpu:cuda or ilgpu:opencl with an optional ':index'", nameof(spec));
        Device[] ilgpu = Available.Where(d => d.Kind == DeviceKind.Ilgpu).ToArray();
        if (runtime is null)
            return ilgpu.Length > 0 ? ilgpu[0] : throw new NativeTensorException($"device '{spec}' is not available: {UnavailableReason(DeviceKind.Ilgpu) ?? "none found"}");
        if (runtime == "cpu" && index != 0) throw new NativeTensorException($"device '{spec}': ILGPU has one emulated cpu device, ilgpu:cpu");
        string wanted = runtime == "cpu" ? "ilgpu:cpu" : $"ilgpu:{runtime}:{index}";
        if (ilgpu.FirstOrDefault(d => d.Spec == wanted) is { } found) return found;
        string why = ilgpu.Length == 0
            ? UnavailableReason(DeviceKind.Ilgpu) ?? "none found"
            : $"ILGPU found {string.Join(", ", ilgpu.Select(d => d.Spec))}";
        throw new NativeTensorException($"device '{spec}' is not available: {why}");
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Spec} ({Name})";

    internal static string KindName(DeviceKind kind) => kind switch
    {
        DeviceKind.Cpu => "cpu",
        DeviceKind.OpenCl => "opencl",
        DeviceKind.Cuda => "cuda",
        DeviceKind.Ilgpu => "ilgpu",
        _ => kind.ToString(),
    };

    private sealed record Discovery(IReadOnlyList<Device> Devices, IReadOnlyDictionary<DeviceKind, string> Reasons);

    private static Discovery Discover()
    {
        var devices = new List<Device> { Cpu };
        var reasons = new Dictionary<DeviceKind, string>();
        NativeLibraries.EnsureRegistered();
        Add(DeviceKind.OpenCl, OpenClBackend.Discover);
        Add(DeviceKind.Cuda, CudaBackend.Discover);
        (IReadOnlyList<Backend> ilgpu, string? ilgpuReason) = IlgpuRuntime.Discover();
        foreach (Backend backend in ilgpu) devices.Add(new Device(backend, IlgpuIndex(((IlgpuBackend)backend).Spec)));
        if (ilgpu.Count == 0) reasons[DeviceKind.Ilgpu] = ilgpuReason ?? "no device found";
        return new Discovery(devices, reasons);

        static int IlgpuIndex(string spec) => int.TryParse(spec[(spec.LastIndexOf(':') + 1)..], out int index) ? index : 0;

        void Add(DeviceKind kind, Func<(IReadOnlyList<Backend> Found, string? Reason)> discover)
        {
            (IReadOnlyList<Backend> found, string? reason) = discover();
            for (int i = 0; i < found.Count; i++) devices.Add(new Device(found[i], i));
            if (found.Count == 0) reasons[kind] = reason ?? "no device found";
        }
    }
}
