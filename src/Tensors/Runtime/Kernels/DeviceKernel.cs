using System.Collections.Immutable;

namespace NativeTensor.Runtime.Kernels;

/// <summary>What one parameter of a kernel is on the C side of <c>kernels/*.cl</c>.</summary>
internal enum ParameterKind
{
    /// <summary>A <c>GLOBAL T*</c>: a <c>cl_mem</c> on OpenCL, a <c>CUdeviceptr</c> on CUDA.</summary>
    Buffer,
    /// <summary><c>int</c>.</summary>
    Int32,
    /// <summary><c>uint</c>, also a float passed as its bits (<c>AS_FLOAT</c> in the kernel).</summary>
    UInt32,
    /// <summary><c>i64</c> (<c>long</c> in OpenCL C, <c>long long</c> in CUDA C).</summary>
    Int64,
}

/// <summary>One parameter of a kernel: its name in the source and its kind.</summary>
internal readonly record struct KernelParameter(string Name, ParameterKind Kind)
{
    public static KernelParameter Buffer(string name) => new(name, ParameterKind.Buffer);
    public static KernelParameter Int32(string name) => new(name, ParameterKind.Int32);
    public static KernelParameter UInt32(string name) => new(name, ParameterKind.UInt32);
    public static KernelParameter Int64(string name) => new(name, ParameterKind.Int64);

    /// <summary>The C spelling of the kind, as OpenCL's <c>clGetKernelArgInfo</c> reports a type (pointers without their pointee).</summary>
    public string CType => Kind switch
    {
        ParameterKind.Buffer => "pointer",
        ParameterKind.Int32 => "int",
        ParameterKind.UInt32 => "uint",
        _ => "long",
    };
}

/// <summary>What a kernel asks of the device beyond running OpenCL C 1.2 or CUDA C.</summary>
[Flags]
internal enum KernelNeeds
{
    None = 0,
    /// <summary>
    /// Binary32 subnormals kept, not flushed: kernels that multiply (unscale, optimizer steps) match the reference bit
    /// for bit only then. NVRTC is always told <c>--ftz=false</c>; an OpenCL device must report <c>CL_FP_DENORM</c>.
    /// </summary>
    Subnormals = 1,
    /// <summary>
    /// Correctly rounded divide and square root: NVRTC's <c>--prec-div=true --prec-sqrt=true</c> always, and OpenCL's
    /// <c>-cl-fp32-correctly-rounded-divide-sqrt</c> wherever the device offers it.
    /// </summary>
    CorrectlyRoundedDivideSqrt = 2,
}

/// <summary>
/// One entry point of <c>kernels/*.cl</c>, declared once: the source file, the entry name, its parameters in order
/// and what it needs of the device. Every backend that runs those sources (OpenCL and CUDA) builds, sizes and launches
/// it from this declaration through <see cref="KernelBackend"/>; a test holds each declaration against the compiled
/// kernel's own argument list (OpenCL's <c>clGetKernelArgInfo</c>), and every launch checks its arguments against it.
/// </summary>
internal sealed class DeviceKernel
{
    private static int _declared;

    /// <param name="source">The file under <c>kernels/</c>.</param>
    /// <param name="entry">The entry point.</param>
    /// <param name="parameters">The kernel's parameters, in the source's order.</param>
    /// <param name="needs">What the kernel asks of the device.</param>
    /// <param name="groupThreads">
    /// Threads per group when the kernel demands an exact size (<c>GROUP_SIZE(n)</c> in the source, e.g. the tiles of
    /// linalg.cl); 0 when any size works.
    /// </param>
    public DeviceKernel(string source, string entry, ImmutableArray<KernelParameter> parameters, KernelNeeds needs = KernelNeeds.None,
        int groupThreads = 0)
    {
        Source = source;
        Entry = entry;
        Parameters = parameters;
        Needs = needs;
        GroupThreads = groupThreads;
        Slot = Interlocked.Increment(ref _declared) - 1;
    }

    public string Source { get; }

    public string Entry { get; }

    public ImmutableArray<KernelParameter> Parameters { get; }

    public KernelNeeds Needs { get; }

    /// <summary>The exact group size the kernel demands, or 0 (see the constructor).</summary>
    public int GroupThreads { get; }

    /// <summary>A small index unique to this declaration in the process, so a backend can cache what it built for it in an array.</summary>
    public int Slot { get; }

    /// <summary>How many kernels are declared in this process: the length of a per-backend cache indexed by <see cref="Slot"/>.</summary>
    public static int Declared => Volatile.Read(ref _declared);

    /// <summary>
    /// Throws unless <paramref name="arguments"/> match <see cref="Parameters"/> in number and kind, so a launch written
    /// out of order fails on its first run on any backend instead of passing a length for a pointer.
    /// </summary>
    /// <exception cref="InvalidOperationException">A mismatch: a defect of the caller, named with the parameter.</exception>
    public void Check(ReadOnlySpan<KernelArgument> arguments)
    {
        if (arguments.Length != Parameters.Length)
            throw new InvalidOperationException($"{this} takes {Parameters.Length} arguments, not {arguments.Length}");
        for (int i = 0; i < arguments.Length; i++)
            if (arguments[i].Kind != Parameters[i].Kind)
                throw new InvalidOperationException(
                    $"{this}: argument {i} ({Parameters[i].Name}) is {Parameters[i].Kind}, but {arguments[i].Kind} was passed");
    }

    public override string ToString() => $"{Entry} ({Source})";
}

/// <summary>
/// One argument of a launch: a buffer of the launching backend, or a 32- or 64-bit scalar. Conversions from the C#
/// types pick the kind, so a call reads as the kernel's signature does.
/// </summary>
internal readonly struct KernelArgument
{
    private KernelArgument(DeviceBuffer? buffer, long value, ParameterKind kind)
    {
        Buffer = buffer;
        Value = value;
        Kind = kind;
    }

    /// <summary>The buffer, or null for a scalar.</summary>
    public DeviceBuffer? Buffer { get; }

    /// <summary>A scalar's value, sign- or zero-extended to 64 bits; a little-endian pointer to it is a pointer to the narrow value too.</summary>
    public long Value { get; }

    public ParameterKind Kind { get; }

    /// <summary>The size of the C value in bytes.</summary>
    public int Size => Kind switch { ParameterKind.Int32 or ParameterKind.UInt32 => 4, _ => 8 };

    public static implicit operator KernelArgument(DeviceBuffer buffer) => new(buffer ?? throw new ArgumentNullException(nameof(buffer)), 0, ParameterKind.Buffer);
    public static implicit operator KernelArgument(long value) => new(null, value, ParameterKind.Int64);
    public static implicit operator KernelArgument(int value) => new(null, value, ParameterKind.Int32);
    public static implicit operator KernelArgument(uint value) => new(null, value, ParameterKind.UInt32);

    /// <summary>A float passed as its bits, which the kernel reads back with <c>AS_FLOAT</c>: no device converts them.</summary>
    public static KernelArgument Bits(float value) => BitConverter.SingleToUInt32Bits(value);

    /// <summary>A flag passed as <c>uint</c> 0 or 1.</summary>
    public static KernelArgument Flag(bool value) => value ? 1u : 0u;
}
