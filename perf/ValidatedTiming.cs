using NativeTensor.Cases;

namespace NativeTensor.Perf;

/// <summary>The shape every op section shares: run the shared cases on each device, report them, and time only the devices that passed.</summary>
internal static class ValidatedTiming
{
    /// <summary>The "validate" lines of <paramref name="cases"/> on each device, then <paramref name="time"/> on those where every case passed.</summary>
    public static (List<T> Rows, bool Failed) Run<T>(IReadOnlyList<Device> devices, Report report, IReadOnlyList<IOpCase> cases,
        Func<Device, IEnumerable<T>> time)
    {
        var rows = new List<T>();
        bool failed = false;
        foreach (Device device in Validate(devices, report, cases, out failed))
            rows.AddRange(time(device));
        return (rows, failed);
    }

    /// <summary>
    /// The families that have no shared case yet (Linalg, Moments): one "validate" line per device from their own
    /// <paramref name="validate"/> (a failure or null), then <paramref name="time"/> on those that passed.
    /// </summary>
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

    /// <summary>
    /// One line per (op, device): <c>ok</c> with how many cases and what they were held to, or <c>FAIL</c> with the first
    /// case that failed and where. Returns the devices on which every case passed.
    /// </summary>
    public static List<Device> Validate(IReadOnlyList<Device> devices, Report report, IReadOnlyList<IOpCase> cases, out bool failed)
    {
        var passed = new List<Device>();
        failed = false;
        foreach (Device device in devices)
        {
            bool ok = true;
            foreach (IGrouping<string, IOpCase> op in cases.Where(c => !(Emulated(device) && PerfCases.TimedLinalg.Contains(c))).GroupBy(c => c.Op))
            {
                string? failure = op.Select(c => Guarded(c, device)).FirstOrDefault(f => f is not null);
                string shapes = Emulated(device) && cases.Any(c => c.Op == op.Key && PerfCases.TimedLinalg.Contains(c)) ? "; the timed shapes left out" : "";
                report.Line($"validate {op.Key,-52} {device.Spec,-9} " +
                    (failure is null ? $"ok   ({op.Count()} cases, {op.First().Standard}{shapes})" : $"FAIL {failure}"));
                ok &= failure is null;
            }
            if (ok) passed.Add(device);
            else
            {
                failed = true;
                report.Line($"validate {device.Spec}: FAILED, so it is not timed");
            }
        }
        return passed;
    }

    /// <summary>
    /// ILGPU's emulated GPU (every group thread an OS thread) is validated, never timed: the timed matrix products' shapes
    /// (10^9-10^10 flops) would take it hours, and the same kernels meet every other case and the test suites.
    /// </summary>
    private static bool Emulated(Device device) => device.Spec == "ilgpu:cpu";

    private static string? Guarded(IOpCase c, Device device)
    {
        try { return c.Check(device) is { } failure ? $"{c.Name}: {failure}" : null; }
        catch (Exception e) { return $"{c.Name}: threw {e.GetType().Name}: {e.Message}"; }
    }
}
