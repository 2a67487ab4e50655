using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Linq.Expressions;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using NativeTensor.Kernels.Ilgpu;
using NativeTensor.Runtime.Kernels;

namespace NativeTensor.Runtime.Ilgpu;

/// <summary>
/// The ILGPU C# kernels of <c>kernels/ilgpu/</c> by entry name: every static method of namespace
/// <c>NativeTensor.Kernels.Ilgpu</c> carrying <see cref="EntryAttribute"/>, made concrete with the attribute's type
/// arguments. Found by reflection once per process, so adding a kernel is writing its method and nothing else.
/// </summary>
internal static class IlgpuEntries
{
    public const string Namespace = "NativeTensor.Kernels.Ilgpu";

    private static readonly Lazy<ILookup<string, MethodInfo>> Found = new(FindAll);

    private static readonly Lazy<FrozenDictionary<string, MethodInfo>> Unique =
        new(() => Found.Value.Where(g => g.Count() == 1).ToFrozenDictionary(g => g.Key, g => g.Single(), StringComparer.Ordinal));

    /// <summary>Every [Entry] method by entry name, duplicates included, for the test that each entry has exactly one.</summary>
    public static ILookup<string, MethodInfo> All => Found.Value;

    /// <summary>The method implementing <paramref name="kernel"/>.</summary>
    /// <exception cref="NativeTensorException">No method, or more than one, carries the entry (<c>EntryNotFound</c>, <c>EntryAmbiguous</c>).</exception>
    public static MethodInfo Find(DeviceKernel kernel)
    {
        if (Unique.Value.TryGetValue(kernel.Entry, out MethodInfo? method)) return method;
        int count = Found.Value[kernel.Entry].Count();
        throw count == 0
            ? new NativeTensorException($"ilgpu: no method of {Namespace} carries [Entry(\"{kernel.Entry}\")], so {kernel} has no ILGPU kernel yet") { ErrorName = "EntryNotFound" }
            : new NativeTensorException($"ilgpu: {count} methods of {Namespace} carry [Entry(\"{kernel.Entry}\")]") { ErrorName = "EntryAmbiguous" };
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "The kernels live in this assembly, which is not trimmed away from itself: ILGPU compiles them from their IL and needs them whole anyway.")]
    [UnconditionalSuppressMessage("Trimming", "IL2060", Justification = "The type arguments are the attribute's own, named in this assembly's source.")]
    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "The kernel classes are used by the kernels' declarations' names only; ILGPU needs their methods' IL whole anyway.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "ILGPU compiles kernels from IL at run time; it does not run under native AOT.")]
    private static ILookup<string, MethodInfo> FindAll()
    {
        var found = new List<(string Entry, MethodInfo Method)>();
        foreach (Type type in typeof(EntryAttribute).Assembly.GetTypes())
        {
            if (type.Namespace != Namespace) continue;
            foreach (MethodInfo method in type.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                foreach (EntryAttribute entry in method.GetCustomAttributes<EntryAttribute>())
                    found.Add((entry.Name, entry.TypeArguments.Length == 0 ? method : method.MakeGenericMethod(entry.TypeArguments)));
        }
        return found.ToLookup(f => f.Entry, f => f.Method, StringComparer.Ordinal);
    }

    /// <summary>The kind a parameter of an [Entry] method stands for: <c>ArrayView&lt;T&gt;</c>, <c>int</c>, <c>uint</c>, <c>long</c>; null for any other type.</summary>
    public static ParameterKind? KindOf(Type parameter) =>
        parameter.IsGenericType && parameter.GetGenericTypeDefinition() == typeof(ArrayView<>) ? ParameterKind.Buffer
        : parameter == typeof(int) ? ParameterKind.Int32
        : parameter == typeof(uint) ? ParameterKind.UInt32
        : parameter == typeof(long) ? ParameterKind.Int64
        : null;
}

/// <summary>
/// Launches one loaded kernel: a delegate compiled once per kernel that casts each buffer's byte view to the element
/// type of its parameter (<c>ArrayView&lt;byte&gt;.Cast&lt;T&gt;()</c>, length bytes / sizeof(T)) and narrows each scalar to
/// its parameter's type, then calls ILGPU's typed launcher. No reflection and no boxing per launch.
/// </summary>
/// <param name="stream">The backend's stream.</param>
/// <param name="config">The grid and group of the launch.</param>
/// <param name="views">The byte view of each buffer argument, at its position (other positions unused).</param>
/// <param name="scalars">The value of each scalar argument, at its position (other positions unused).</param>
internal delegate void IlgpuLauncher(AcceleratorStream stream, KernelConfig config, ArrayView<byte>[] views, long[] scalars);

internal static class IlgpuLaunchers
{
    /// <summary>Builds the launcher of <paramref name="kernel"/>, loaded from <paramref name="method"/>.</summary>
    /// <exception cref="InvalidOperationException">A parameter of the method has a type no declaration can pass.</exception>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Expressions over ILGPU's own launcher and ArrayView<byte>.Cast, all rooted by the kernels that use them.")]
    [UnconditionalSuppressMessage("Trimming", "IL2060", Justification = "Cast's type argument is a parameter type of a kernel in this assembly.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "ILGPU compiles kernels from IL at run time; it does not run under native AOT.")]
    public static IlgpuLauncher Create(Kernel kernel, MethodInfo method)
    {
        ParameterInfo[] parameters = method.GetParameters();
        var stream = Expression.Parameter(typeof(AcceleratorStream), "stream");
        var config = Expression.Parameter(typeof(KernelConfig), "config");
        var views = Expression.Parameter(typeof(ArrayView<byte>[]), "views");
        var scalars = Expression.Parameter(typeof(long[]), "scalars");
        var arguments = new List<Expression> { stream, config };
        MethodInfo cast = typeof(ArrayView<byte>).GetMethod(nameof(ArrayView<byte>.Cast))!;
        for (int i = 0; i < parameters.Length; i++)
        {
            Type type = parameters[i].ParameterType;
            Expression index = Expression.Constant(i);
            arguments.Add(IlgpuEntries.KindOf(type) switch
            {
                ParameterKind.Buffer => Expression.Call(Expression.ArrayIndex(views, index), cast.MakeGenericMethod(type.GetGenericArguments()[0])),
                ParameterKind.Int32 or ParameterKind.UInt32 or ParameterKind.Int64 => Expression.Convert(Expression.ArrayIndex(scalars, index), type),
                _ => throw new InvalidOperationException($"{method.DeclaringType?.Name}.{method.Name}: parameter {parameters[i].Name} is {type.Name}, not ArrayView<T>, int, uint or long"),
            });
        }
        Type[] signature = [typeof(AcceleratorStream), typeof(KernelConfig), .. parameters.Select(p => p.ParameterType), typeof(void)];
        Delegate typed = kernel.Launcher!.CreateDelegate(Expression.GetDelegateType(signature), kernel);
        Expression call = Expression.Invoke(Expression.Constant(typed), arguments);
        return Expression.Lambda<IlgpuLauncher>(call, stream, config, views, scalars).Compile();
    }
}
