using System.Reflection;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NativeTensor.Runtime.Ilgpu;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Tests.Ilgpu;

/// <summary>
/// The ILGPU kernels against the declarations every backend launches from: each declaration has exactly one [Entry]
/// method with its parameters in number and kind, each [Entry] names a declaration, and every [Entry] kernel compiles
/// to PTX for the GPUs the project targets, on any machine (ILGPU's PTX backend needs no GPU and no driver).
/// </summary>
public sealed class IlgpuKernelTests
{
    [Fact]
    public void Every_declaration_has_exactly_one_entry_method_with_its_parameters()
    {
        foreach (DeviceKernel kernel in KernelBackend.Declarations)
        {
            MethodInfo[] methods = [.. IlgpuEntries.All[kernel.Entry]];
            Assert.True(methods.Length == 1, $"{kernel}: {methods.Length} methods carry [Entry(\"{kernel.Entry}\")], not one");
            ParameterInfo[] parameters = methods[0].GetParameters();
            Assert.True(parameters.Length == kernel.Parameters.Length,
                $"{kernel}: {methods[0].Name} has {parameters.Length} parameters, the declaration {kernel.Parameters.Length}");
            for (int i = 0; i < parameters.Length; i++)
                Assert.True(IlgpuEntries.KindOf(parameters[i].ParameterType) == kernel.Parameters[i].Kind,
                    $"{kernel}: parameter {i} ({kernel.Parameters[i].Name}) is {parameters[i].ParameterType.Name} in {methods[0].Name}, {kernel.Parameters[i].Kind} in the declaration");
        }
    }

    [Fact]
    public void Every_entry_method_names_a_declaration()
    {
        HashSet<string> declared = [.. KernelBackend.Declarations.Select(k => k.Entry)];
        foreach (IGrouping<string, MethodInfo> entry in IlgpuEntries.All)
            Assert.True(declared.Contains(entry.Key), $"[Entry(\"{entry.Key}\")] on {string.Join(", ", entry.Select(m => m.Name))} names no declaration");
    }

    public static TheoryData<string> Architectures => ["sm_80", "sm_90"];

    /// <summary>
    /// Each kernel through ILGPU's PTX backend as a CUDA accelerator of that architecture would compile it, with the
    /// backend's own context (fast math off): the PTX targets an architecture the device loads, and no kernel that needs exact rounding
    /// carries a flushing or approximate instruction.
    /// </summary>
    [Theory]
    [MemberData(nameof(Architectures))]
    public void Every_entry_compiles_to_ptx_without_a_gpu(string architecture)
    {
        CudaArchitecture target = architecture == "sm_80" ? CudaArchitecture.SM_80 : CudaArchitecture.SM_90;
        // PTX ISA 7.8 (CUDA 12.0) is the first to know sm_90, and any 12.x driver loads it.
        using var backend = new PTXBackend(IlgpuRuntime.Context, target, CudaInstructionSet.ISA_78, nvvmAPI: null!);   // no NVVM: the PTX backend's own code generator
        Dictionary<string, DeviceKernel> declared = KernelBackend.Declarations.ToDictionary(k => k.Entry);
        var failures = new List<string>();
        foreach (IGrouping<string, MethodInfo> entry in IlgpuEntries.All)
            foreach (MethodInfo method in entry)
            {
                try
                {
                    var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), KernelSpecialization.Empty);
                    string ptx = compiled.PTXAssembly;
                    // ILGPU targets the lowest architecture that has every capability it uses (sm_80 at most), which the
                    // driver compiles on for the device: so an sm_90 device loads sm_80 PTX.
                    var targetLine = System.Text.RegularExpressions.Regex.Match(ptx, @"\.target sm_([0-9]+)");
                    if (!targetLine.Success || int.Parse(targetLine.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > int.Parse(architecture[3..], System.Globalization.CultureInfo.InvariantCulture))
                        failures.Add($"{entry.Key}: PTX targets {(targetLine.Success ? targetLine.Value : "nothing")}, which {architecture} cannot load");
                    if (declared.TryGetValue(entry.Key, out DeviceKernel? kernel) && kernel.Needs != KernelNeeds.None
                        && (ptx.Contains(".ftz.f32", StringComparison.Ordinal) || ptx.Contains(".approx.", StringComparison.Ordinal)))
                        failures.Add($"{entry.Key}: needs {kernel.Needs}, but its PTX flushes subnormals or approximates");
                }
                catch (Exception e)
                {
                    failures.Add($"{entry.Key} ({method.DeclaringType?.Name}.{method.Name}): {e.GetType().Name}: {e.Message}");
                }
            }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.NotEmpty(IlgpuEntries.All);
    }
}
