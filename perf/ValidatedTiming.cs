namespace NativeTensor.Perf;

/// <summary>The shape every op section shares: check each device against the reference, report it, and time only the devices that passed.</summary>
internal static class ValidatedTiming
{
    /// <summary>One "validate" line per device (<paramref name="validate"/> returns a failure or null), then <paramref name="time"/> on those that passed.</summary>
    public static (List<T> Rows, bool Failed) Run<T>(IReadOnlyList<Device> devices, Report report, string label, string passed,
        Func<Device, string?> validate, Func<Device, IEnumerable<T>> time)
    {
        var rows = new List<T>();
        bool failed = false;
        foreach (Device device in devices)
        {
            string? failure = validate(device);
            report.Line($"validate {label}  {device.Spec,-9} {(failure is null ? "ok   " + passed : "FAIL " + failure)}");
            if (failure is not null) { failed = true; continue; }
            rows.AddRange(time(device));
        }
        return (rows, failed);
    }

    /// <summary>A tensor of <paramref name="dtype"/> holding exactly <paramref name="bytes"/>, on <paramref name="device"/>.</summary>
    public static Tensor FromBytes(DType dtype, byte[] bytes, Device device)
    {
        using Tensor host = Tensor.Empty(dtype, [bytes.Length / dtype.SizeOf()], Device.Cpu);
        bytes.CopyTo(Tensor.CpuBytes(host.Buffer, bytes.Length));
        return host.To(device);
    }
}
