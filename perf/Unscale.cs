using NativeTensor.Cases;
using NativeTensor.Runtime;

namespace NativeTensor.Perf;

/// <summary>
/// NativeTensor.Precision.UnscaleAndCheck and FindNonFinite on every device: first the shared <see cref="UnscaleCase"/>s of
/// <see cref="PerfCases.Unscale"/> (bit for bit, and the flag, against PrecisionReference), then the timed cases in
/// place beside a copy of the same bytes on the same device. GB/s counts bytes read + written: an unscale reads and writes each element once, so
/// a copy of the gradient's bytes moves exactly as much and is the ceiling.
/// </summary>
internal static class Unscale
{
    private const long Elements = PerfCases.ElementwiseElements;

    public static string CopyOp(DType dtype) => $"copy: Backend.Copy, {dtype.SizeOf()} bytes/element";

    public static string UnscaleOp(DType dtype) => $"unscale: {(dtype == DType.Float32 ? "f32" : "bf16")}";

    /// <summary>Validates, then times; returns the rows of the devices that validated, and whether any failed.</summary>
    public static (List<ConversionRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        report.Section("Unscale: NativeTensor.Precision.UnscaleAndCheck");
        (List<ConversionRow> rows, bool failed) = ValidatedTiming.Run(devices, report, PerfCases.Unscale, device => Time(device, plan));
        Print(rows, report);
        return (rows, failed);
    }

    private static List<ConversionRow> Time(Device device, RunPlan plan)
    {
        Backend backend = device.Backend;
        // Every buffer is written first: a never-touched one would be read from the kernel's shared zero page.
        using Tensor copyFrom = Filled(device);
        using Tensor copyTo = Filled(device);
        var prepared = new List<PreparedCase>();
        try
        {
            var ops = new List<(string Op, long Moved, Action<int> Body)>();
            foreach (DType dtype in PerfCases.UnscaleTypes)
            {
                UnscaleCase timed = PerfCases.TimedUnscale(dtype);
                long bytes = timed.MovedBytes / 2;
                ops.Add((CopyOp(dtype), 2 * bytes, _ => backend.Copy(copyFrom.Buffer, 0, copyTo.Buffer, 0, bytes)));
                PreparedCase run = timed.Prepare(device);
                prepared.Add(run);
                ops.Add((UnscaleOp(dtype), timed.MovedBytes, _ => run.Run()));
            }
            Timing[] timings = Timer.Interleaved(backend, plan with { Reps = Math.Min(plan.Reps, 30) }, ops.Select(o => o.Body).ToArray());
            return ops.Select((o, k) => new ConversionRow(o.Op, device.Spec, o.Moved, timings[k])).ToList();
        }
        finally
        {
            foreach (PreparedCase p in prepared) p.Dispose();
        }
    }

    /// <summary>Finite Float32 values between 2^-20 and 2^15 in magnitude: the copy rows' buffers.</summary>
    private static Tensor Filled(Device device) => CaseBytes.FromBytes(DType.Float32, [Elements], device, CaseBytes.Magnitudes(DType.Float32, Elements, 7));

    private static void Print(IReadOnlyList<ConversionRow> rows, Report report)
    {
        CopyTable.Print(rows, Elements, report);
        report.Line("GB/s = bytes read + written; each unscale row's copy moves the gradient's own bytes (read once, written once). In place, an unscale");
        report.Line("writes lines it has just read, while a copy also reads each destination line before writing it, so an unscale can pass 100%.");
    }
}
