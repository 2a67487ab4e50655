using System.Runtime.InteropServices;
using NativeTensor.Reference;
using NativeTensor.Runtime;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace NativeTensor.Perf;

/// <summary>One conversion timing: GB/s counts bytes read + written.</summary>
internal sealed record ConversionRow(string Op, string Backend, long MovedBytes, Timing Time)
{
    public double Gbps => Time.GigabytesPerSecond(MovedBytes);
}

/// <summary>
/// NativeTensor.Precision.Convert on every device: first checked bit for bit against <see cref="PrecisionReference"/> on random
/// bit patterns (NaN payloads, subnormals and infinities included), then timed in every direction beside a copy
/// of the same bytes on the same device and, on the CPU, beside System.Numerics.Tensors' TensorPrimitives.
/// </summary>
internal static class Precision
{
    /// <summary>Elements per timed conversion: 64 MB of Float32, far beyond every cache.</summary>
    private const long Elements = 16L << 20;

    public const string CopyOp = "copy: Backend.Copy";

    private static readonly (DType From, DType To)[] Directions =
    [
        (DType.Float32, DType.Float16), (DType.Float32, DType.BFloat16), (DType.Float16, DType.Float32),
        (DType.BFloat16, DType.Float32), (DType.Float16, DType.BFloat16), (DType.BFloat16, DType.Float16),
    ];

    /// <summary>Validates, then times; returns the rows of the devices that validated, and whether any failed.</summary>
    public static (List<ConversionRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        report.Section("Conversions: NativeTensor.Precision.Convert");
        (List<ConversionRow> rows, bool failed) = ValidatedTiming.Run(devices, report, "precision.convert, 6 directions",
            "(1M random patterns each, bit-exact vs PrecisionReference)", Validate, device => Time(device, plan));
        Print(rows, report);
        return (rows, failed);
    }

    private static string? Validate(Device device)
    {
        var random = new Random(16);
        foreach ((DType from, DType to) in Directions)
        {
            var bytes = new byte[(1 << 20) * from.SizeOf()];
            random.NextBytes(bytes);
            using Tensor source = ValidatedTiming.FromBytes(from, bytes, device);
            using Tensor converted = NativeTensor.Precision.Convert(source, to);
            using Tensor back = converted.To(Device.Cpu);
            Span<byte> actual = Tensor.CpuBytes(back.Buffer, back.ByteCount);
            for (int i = 0; i < 1 << 20; i++)
            {
                ulong bits = from.SizeOf() == 4 ? BitConverter.ToUInt32(bytes, i * 4) : BitConverter.ToUInt16(bytes, i * 2);
                ulong expected = PrecisionReference.Convert(bits, from, to);
                ulong got = to.SizeOf() == 4 ? MemoryMarshal.Read<uint>(actual[(i * 4)..]) : MemoryMarshal.Read<ushort>(actual[(i * 2)..]);
                if (got != expected) return $"{from} -> {to}: element {i} = 0x{bits:X}: expected 0x{expected:X}, got 0x{got:X}";
            }
        }
        return null;
    }

    private static List<ConversionRow> Time(Device device, RunPlan plan)
    {
        Backend backend = device.Backend;
        var tensors = new Dictionary<DType, (Tensor Source, Tensor Target)>();
        // Both copy buffers are written first: a never-touched source would be read from the kernel's shared zero page.
        using Tensor copyFrom = Filled(DType.Float32, device);
        using Tensor copyTo = Filled(DType.Float32, device);
        try
        {
            foreach (DType dtype in new[] { DType.Float32, DType.Float16, DType.BFloat16 })
                tensors[dtype] = (Filled(dtype, device), Tensor.Empty(dtype, [Elements], device));
            var ops = new List<(string Op, long Moved, Action<int> Body)>();
            // The ceiling: a copy moving as many bytes (read + written) as a 4-byte <-> 2-byte conversion.
            long moved = Elements * 6;   // copies 3 * Elements bytes: read 3E + written 3E, as a conversion reads 4E and writes 2E
            ops.Add((CopyOp, moved, _ => backend.Copy(copyFrom.Buffer, 0, copyTo.Buffer, 0, moved / 2)));
            foreach ((DType from, DType to) in Directions)
                ops.Add(($"convert: {Name(from)} -> {Name(to)}", Elements * (from.SizeOf() + to.SizeOf()),
                    _ => NativeTensor.Precision.Convert(tensors[from].Source, to, tensors[to].Target)));
            if (device.Kind == DeviceKind.Cpu)
            {
                ops.Add(("peer: TensorPrimitives.ConvertToHalf", moved,
                    _ => TensorPrimitives.ConvertToHalf(tensors[DType.Float32].Source.AsSpan<float>(), tensors[DType.Float16].Target.AsSpan<Half>())));
                ops.Add(("peer: TensorPrimitives.ConvertToSingle", moved,
                    _ => TensorPrimitives.ConvertToSingle(tensors[DType.Float16].Source.AsSpan<Half>(), tensors[DType.Float32].Target.AsSpan<float>())));
            }
            Timing[] timings = Timer.Interleaved(backend, plan with { Reps = Math.Min(plan.Reps, 30) }, ops.Select(o => o.Body).ToArray());
            return ops.Select((o, k) => new ConversionRow(o.Op, device.Spec, o.Moved, timings[k])).ToList();
        }
        finally
        {
            foreach ((Tensor s, Tensor t) in tensors.Values) { s.Dispose(); t.Dispose(); }
        }
    }

    /// <summary>Finite values of every magnitude the formats share, so no conversion takes a rare path throughout.</summary>
    private static Tensor Filled(DType dtype, Device device)
    {
        var random = new Random(7);
        var values = new float[Elements];
        for (long i = 0; i < values.LongLength; i++) values[i] = (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-20, 15)));
        using Tensor single = Tensor.FromArray(values);
        using Tensor typed = NativeTensor.Precision.Convert(single, dtype);
        return typed.To(device);
    }

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
