using System.Runtime.InteropServices;
using NativeTensor.Reference;
using NativeTensor.Runtime;

namespace NativeTensor.Perf;

/// <summary>
/// NativeTensor.Precision.UnscaleAndCheck on every device: first checked bit for bit (and its flag) against
/// <see cref="UnscaleReference.Unscale"/> on random bit patterns, then timed in place beside a copy of the same
/// bytes on the same device. GB/s counts bytes read + written: an unscale reads and writes each element once, so
/// a copy of the gradient's bytes moves exactly as much and is the ceiling.
/// </summary>
internal static class Unscale
{
    /// <summary>Elements per timed gradient: 64 MB of Float32, far beyond every cache.</summary>
    private const long Elements = 16L << 20;

    public static string CopyOp(DType dtype) => $"copy: Backend.Copy, {dtype.SizeOf()} bytes/element";

    public static string UnscaleOp(DType dtype) => $"unscale: {(dtype == DType.Float32 ? "f32" : "bf16")}";

    public static readonly DType[] DTypes = [DType.Float32, DType.BFloat16];

    /// <summary>Validates, then times; returns the rows of the devices that validated, and whether any failed.</summary>
    public static (List<ConversionRow> Rows, bool Failed) Run(IReadOnlyList<Device> devices, RunPlan plan, Report report)
    {
        report.Section("Unscale: NativeTensor.Precision.UnscaleAndCheck");
        (List<ConversionRow> rows, bool failed) = ValidatedTiming.Run(devices, report, "precision.unscale, f32 + bf16 ",
            "(1M random patterns each, bit-exact and flag vs PrecisionReference)", Validate, device => Time(device, plan));
        Print(rows, report);
        return (rows, failed);
    }

    private static string? Validate(Device device)
    {
        var random = new Random(17);
        float scale = (float)(1 / 65536.0);
        foreach (DType dtype in DTypes)
        {
            var bytes = new byte[(1 << 20) * dtype.SizeOf()];
            random.NextBytes(bytes);
            using Tensor gradient = ValidatedTiming.FromBytes(dtype, bytes, device);
            bool flag = NativeTensor.Precision.UnscaleAndCheck([gradient], scale);
            using Tensor back = gradient.To(Device.Cpu);
            Span<byte> actual = Tensor.CpuBytes(back.Buffer, back.ByteCount);
            bool expectedFlag = false;
            for (int i = 0; i < 1 << 20; i++)
            {
                uint bits = dtype == DType.Float32 ? BitConverter.ToUInt32(bytes, i * 4) : BitConverter.ToUInt16(bytes, i * 2);
                uint expected = UnscaleReference.Unscale(bits, dtype, scale, out bool nonFinite);
                expectedFlag |= nonFinite;
                uint got = dtype == DType.Float32 ? MemoryMarshal.Read<uint>(actual[(i * 4)..]) : MemoryMarshal.Read<ushort>(actual[(i * 2)..]);
                if (got != expected) return $"{dtype}: element {i} = 0x{bits:X}: expected 0x{expected:X}, got 0x{got:X}";
            }
            if (flag != expectedFlag) return $"{dtype}: flag {flag}, reference {expectedFlag}";
        }
        return null;
    }

    private static List<ConversionRow> Time(Device device, RunPlan plan)
    {
        Backend backend = device.Backend;
        // Every buffer is written first: a never-touched one would be read from the kernel's shared zero page.
        using Tensor copyFrom = Filled(DType.Float32, device);
        using Tensor copyTo = Filled(DType.Float32, device);
        using Tensor single = Filled(DType.Float32, device);
        using Tensor bf16 = Filled(DType.BFloat16, device);
        var ops = new List<(string Op, long Moved, Action<int> Body)>();
        foreach (DType dtype in DTypes)
        {
            long bytes = Elements * dtype.SizeOf();
            ops.Add((CopyOp(dtype), 2 * bytes, _ => backend.Copy(copyFrom.Buffer, 0, copyTo.Buffer, 0, bytes)));
            Tensor gradient = dtype == DType.Float32 ? single : bf16;
            // In place, so alternate 2^-16 and 2^16: exact for these magnitudes, and the values never drift into
            // subnormals (slow on x86) or overflow.
            bool down = true;
            ops.Add((UnscaleOp(dtype), 2 * bytes, _ =>
            {
                NativeTensor.Precision.UnscaleAndCheck([gradient], down ? MathF.ScaleB(1, -16) : MathF.ScaleB(1, 16));
                down = !down;
            }));
        }
        Timing[] timings = Timer.Interleaved(backend, plan with { Reps = Math.Min(plan.Reps, 30) }, ops.Select(o => o.Body).ToArray());
        return ops.Select((o, k) => new ConversionRow(o.Op, device.Spec, o.Moved, timings[k])).ToList();
    }

    /// <summary>Finite values between 2^-20 and 2^15 in magnitude.</summary>
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
        CopyTable.Print(rows, Elements, report);
        report.Line("GB/s = bytes read + written; each unscale row's copy moves the gradient's own bytes (read once, written once). In place, an unscale");
        report.Line("writes lines it has just read, while a copy also reads each destination line before writing it, so an unscale can pass 100%.");
    }
}
