using NativeTensor.Cases;
using NativeTensor.Runtime;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace NativeTensor.Perf;

/// <summary>One conversion timing: GB/s counts bytes read + written.</summary>
internal sealed record ConversionRow(string Op, string Backend, long MovedBytes, Timing Time)
{
    public double Gbps => Time.GigabytesPerSecond(MovedBytes);
}

/// <summary>
/// NativeTensor.Precision.Convert on every device: first the shared <see cref="ConvertCase"/>s of <see cref="PerfCases.Conversions"/>
/// (bit for bit against PrecisionReference on random bit patterns, special values and the timed shape), then those
/// timed cases in every direction beside a copy of the same bytes on the same device and, on the CPU, beside
/// System.Numerics.Tensors' TensorPrimitives.
/// </summary>
internal static class Precision
{
    private const long Elements = PerfCases.ElementwiseElements;

    public const string CopyOp = "copy: Backend.Copy";

    /// <summary>Validates, then times; returns the rows of the devices that validated, and whether any failed.</summary>
    public static (List<ConversionRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        report.Section("Conversions: NativeTensor.Precision.Convert");
        (List<ConversionRow> rows, bool failed) = ValidatedTiming.Run(devices, report, PerfCases.Conversions, device => Time(device, plan));
        Print(rows, report);
        return (rows, failed);
    }

    private static List<ConversionRow> Time(Device device, RunPlan plan)
    {
        Backend backend = device.Backend;
        var prepared = new List<PreparedCase>();
        // Both copy buffers are written first: a never-touched source would be read from the kernel's shared zero page.
        using Tensor copyFrom = Filled(DType.Float32, device);
        using Tensor copyTo = Filled(DType.Float32, device);
        try
        {
            var ops = new List<(string Op, long Moved, Action<int> Body)>();
            // The ceiling: a copy moving as many bytes (read + written) as a 4-byte <-> 2-byte conversion.
            long moved = Elements * 6;   // copies 3 * Elements bytes: read 3E + written 3E, as a conversion reads 4E and writes 2E
            ops.Add((CopyOp, moved, _ => backend.Copy(copyFrom.Buffer, 0, copyTo.Buffer, 0, moved / 2)));
            foreach ((DType from, DType to) in PerfCases.Directions)
            {
                ConvertCase timed = PerfCases.TimedConversion(from, to);
                PreparedCase run = timed.Prepare(device);
                prepared.Add(run);
                ops.Add(($"convert: {Name(from)} -> {Name(to)}", timed.MovedBytes, _ => run.Run()));
            }
            if (device.Kind == DeviceKind.Cpu)
            {
                // The peer converts the same finite values between its own buffers.
                using Tensor single = Filled(DType.Float32, device), half = Filled(DType.Float16, device);
                using Tensor toHalf = Tensor.Empty(DType.Float16, [Elements], device), toSingle = Tensor.Empty(DType.Float32, [Elements], device);
                ops.Add(("peer: TensorPrimitives.ConvertToHalf", moved,
                    _ => TensorPrimitives.ConvertToHalf(single.AsSpan<float>(), toHalf.AsSpan<Half>())));
                ops.Add(("peer: TensorPrimitives.ConvertToSingle", moved,
                    _ => TensorPrimitives.ConvertToSingle(half.AsSpan<Half>(), toSingle.AsSpan<float>())));
                return Timed(device, plan, ops);
            }
            return Timed(device, plan, ops);
        }
        finally
        {
            foreach (PreparedCase p in prepared) p.Dispose();
        }
    }

    private static List<ConversionRow> Timed(Device device, RunPlan plan, List<(string Op, long Moved, Action<int> Body)> ops)
    {
        Timing[] timings = Timer.Interleaved(device.Backend, plan with { Reps = Math.Min(plan.Reps, 30) }, ops.Select(o => o.Body).ToArray());
        return ops.Select((o, k) => new ConversionRow(o.Op, device.Spec, o.Moved, timings[k])).ToList();
    }

    /// <summary>The timed cases' finite values (<see cref="CaseBytes.Magnitudes"/>) in <paramref name="dtype"/>, on the device.</summary>
    private static Tensor Filled(DType dtype, Device device) =>
        CaseBytes.FromBytes(dtype, [Elements], device, CaseBytes.Magnitudes(dtype, Elements, 7));

    private static void Print(IReadOnlyList<ConversionRow> rows, Report report)
    {
        var cells = new List<string[]> { new[] { "op", "elements", "backend", "median ms (min–max)", "GB/s", "% of copy", "vs TensorPrimitives" } };
        foreach (ConversionRow row in rows)
        {
            ConversionRow? copy = rows.FirstOrDefault(r => r.Op == CopyOp && r.Backend == row.Backend);
            ConversionRow? peer = Peer(row, rows);
            cells.Add(
            [
                row.Op, $"{Elements:N0}", row.Backend,
                $"{row.Time.MedianMs:F2} ({row.Time.MinMs:F2}–{row.Time.MaxMs:F2})",
                $"{row.Gbps:F1}",
                copy is null ? "—" : $"{100 * row.Gbps / copy.Gbps:F0}%",
                peer is null ? "—" : $"{row.Gbps / peer.Gbps:F2}x",
            ]);
        }
        report.Table(cells, [false, true, false, true, true, true, true]);
        report.Line("TensorPrimitives runs on one thread (it has no parallel mode); NativeTensor.Precision.Convert on the CPU uses every core.");
    }

    /// <summary>The TensorPrimitives row that does the same conversion on the same device, if any.</summary>
    public static ConversionRow? Peer(ConversionRow row, IReadOnlyList<ConversionRow> rows) => row.Op switch
    {
        "convert: f32 -> f16" => rows.FirstOrDefault(r => r.Backend == row.Backend && r.Op.EndsWith("ConvertToHalf", StringComparison.Ordinal)),
        "convert: f16 -> f32" => rows.FirstOrDefault(r => r.Backend == row.Backend && r.Op.EndsWith("ConvertToSingle", StringComparison.Ordinal)),
        _ => null,
    };

    private static string Name(DType dtype) => dtype switch
    {
        DType.Float32 => "f32",
        DType.Float16 => "f16",
        _ => "bf16",
    };
}
