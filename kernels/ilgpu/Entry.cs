namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// Marks an ILGPU C# kernel as the implementation of one entry point of <c>kernels/*.cl</c>, so the ILGPU backend runs
/// the same <see cref="Runtime.Kernels.DeviceKernel"/> declarations as OpenCL and CUDA: same name, same parameters in the
/// same order (a <c>Buffer</c> is an <c>ArrayView&lt;T&gt;</c> of the element the C kernel indexes; <c>Int32</c>,
/// <c>UInt32</c>, <c>Int64</c> are <c>int</c>, <c>uint</c>, <c>long</c>), launched over the same <c>LaunchShape</c>
/// (explicitly grouped: <c>Grid.IdxX</c> is <c>get_group_id(0)</c>, <c>Group.IdxX</c> is <c>get_local_id(0)</c>).
/// A generic kernel names the element types of the entry it implements in <see cref="TypeArguments"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
internal sealed class EntryAttribute(string name, params Type[] typeArguments) : Attribute
{
    /// <summary>The entry point of <c>kernels/*.cl</c> this method implements.</summary>
    public string Name { get; } = name;

    /// <summary>The type arguments that make the generic method this entry; empty for a non-generic one.</summary>
    public Type[] TypeArguments { get; } = typeArguments;
}
