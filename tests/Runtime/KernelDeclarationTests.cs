using NativeTensor.Runtime.Kernels;
using NativeTensor.Runtime.OpenCl;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// Every device kernel is declared once (<see cref="DeviceKernel"/>), and every backend launches it from that
/// declaration. These tests hold the declarations against the sources as the OpenCL compiler reads them: each entry
/// point of <c>kernels/*.cl</c> is declared, and each declaration names the source's parameters in order with their kinds.
/// </summary>
public sealed class KernelDeclarationTests
{
    [Fact]
    public void Every_declaration_matches_its_kernels_parameters_in_the_source()
    {
        var backend = (OpenClBackend)Backends.Require(DeviceKind.OpenCl).Backend;
        foreach (DeviceKernel kernel in KernelBackend.Declarations)
        {
            IReadOnlyList<(string Name, string Type)> source = backend.ProgramWithArgumentInfo(kernel.Source).Kernel(kernel.Entry).Parameters();
            Assert.True(source.Count == kernel.Parameters.Length, $"{kernel}: the source has {source.Count} parameters, the declaration {kernel.Parameters.Length}");
            for (int i = 0; i < source.Count; i++)
            {
                KernelParameter declared = kernel.Parameters[i];
                Assert.True(source[i].Name == declared.Name, $"{kernel}: parameter {i} is '{source[i].Name}' in the source, '{declared.Name}' in the declaration");
                Assert.True(Matches(declared.Kind, source[i].Type), $"{kernel}: parameter {i} ({declared.Name}) is '{source[i].Type}' in the source, {declared.Kind} in the declaration");
            }
        }
    }

    [Fact]
    public void Every_entry_point_of_every_source_is_declared()
    {
        var backend = (OpenClBackend)Backends.Require(DeviceKind.OpenCl).Backend;
        foreach (IGrouping<string, DeviceKernel> file in KernelBackend.Declarations.GroupBy(k => k.Source))
        {
            IEnumerable<string> inSource = backend.ProgramWithArgumentInfo(file.Key).KernelNames().Order(StringComparer.Ordinal);
            Assert.Equal(inSource, file.Select(k => k.Entry).Order(StringComparer.Ordinal));
        }
        Assert.Equal(KernelBackend.Declarations.Count(), KernelBackend.Declarations.Select(k => k.Slot).Distinct().Count());
    }

    [Fact]
    public void A_launch_whose_arguments_differ_from_the_declaration_is_refused()
    {
        DeviceKernel kernel = PrecisionKernels.Convert(DType.Float32, DType.Float16);
        Assert.Contains("takes 3 arguments, not 2", Assert.Throws<InvalidOperationException>(() => kernel.Check([1L, 2L])).Message);
        Assert.Contains("argument 0 (src) is Buffer, but Int64 was passed",
            Assert.Throws<InvalidOperationException>(() => kernel.Check([1L, 2L, 3L])).Message);
    }

    /// <summary>OpenCL reports a typedef by its own name (<c>i64</c>) or what it stands for, and a pointer with its pointee.</summary>
    private static bool Matches(ParameterKind kind, string type) => kind switch
    {
        ParameterKind.Buffer => type.EndsWith('*'),
        ParameterKind.Int32 => type == "int",
        ParameterKind.UInt32 => type is "uint" or "uint32_t",
        _ => type is "long" or "i64",
    };
}
