using System.Runtime.InteropServices;
using NativeTensor.Runtime;
using NativeTensor.Runtime.OpenCl;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// Backend-level checks of <c>kernels/optimizer_steps.cl</c> and <c>find_non_finite_*</c> of <c>kernels/unscale.cl</c>:
/// a device's AdamW and SGD steps give bit for bit the parameters, state and working copy of the CPU backend from the
/// same inputs and constants (every operation is specified as rounded to nearest and unfused, so there is no
/// tolerance), for every gradient dtype and working copy; and the non-finite search finds one NaN or Inf at the very
/// last element. Every buffer runs on past its elements into a guard that must come back untouched.
/// </summary>
public abstract class OptimizerStepsBackendTests
{
    private const int GuardBytes = 256;

    protected abstract Device Device { get; }

    public static TheoryData<DType, DType?> Combinations()
    {
        var data = new TheoryData<DType, DType?>();
        foreach (DType gradient in (DType[])[DType.Float32, DType.Float16, DType.BFloat16])
            foreach (DType? working in (DType?[])[null, DType.Float16, DType.BFloat16])
                data.Add(gradient, working);
        return data;
    }

    private static readonly int[] Lengths = [0, 1, 1000, 65537];

    [Theory]
    [MemberData(nameof(Combinations))]
    public void AdamW_matches_the_cpu_bit_for_bit(DType gradient, DType? working)
    {
        Backend device = RequireExactSteps();
        if (device is OpenClBackend openCl)
            Assert.SkipUnless(openCl.RoundsDivideAndSqrtCorrectly,
                $"'{openCl.Name}' may round divide and sqrt by up to 3 ulp (no CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT): the derived bound of the parity suite tests AdamW there");
        foreach (int length in Lengths)
            foreach (long step in (long[])[1, 7])
            {
                AdamWConstants constants = AdamWConstants.For(new AdamWOptions(), step, 0.5f);
                Compare(device, adamW: true, gradient, working, length, seed: length * 31 + (int)step,
                    (backend, buffers) => backend.AdamWStep(buffers, constants), $"AdamW step {step}");
            }
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void Sgd_matches_the_cpu_bit_for_bit(DType gradient, DType? working)
    {
        Backend device = RequireExactSteps();
        foreach (int length in Lengths)
            foreach (bool nesterov in (bool[])[false, true])
                foreach (bool first in (bool[])[true, false])
                {
                    SgdConstants constants = SgdConstants.For(new SgdOptions { Nesterov = nesterov, WeightDecay = 0.01 }, first, 0.5f);
                    Compare(device, adamW: false, gradient, working, length, seed: length * 17 + (nesterov ? 2 : 0) + (first ? 1 : 0),
                        (backend, buffers) => backend.SgdStep(buffers, constants), $"SGD nesterov {nesterov} first {first}");
                }
    }

    [Theory]
    [InlineData(DType.Float32, 0x7FC0_0000u)]
    [InlineData(DType.Float32, 0x7F80_0000u)]
    [InlineData(DType.Float32, 0xFF80_0000u)]
    [InlineData(DType.Float16, 0x7E00u)]
    [InlineData(DType.Float16, 0x7C00u)]
    [InlineData(DType.Float16, 0xFC01u)]
    [InlineData(DType.BFloat16, 0x7FC0u)]
    [InlineData(DType.BFloat16, 0x7F80u)]
    [InlineData(DType.BFloat16, 0xFF81u)]
    public void FindNonFinite_finds_one_value_at_the_last_element(DType dtype, uint special)
    {
        Backend backend = Device.Backend;
        foreach (int length in (int[])[1, 1000, 65537])
        {
            byte[] data = FiniteBits(dtype, length, new Random(length));
            using DeviceBuffer empty = backend.Allocate(0);
            using DeviceBuffer buffer = backend.Allocate(data.Length);
            backend.Write(buffer, 0, data);
            Assert.False(backend.FindNonFinite([(empty, dtype, 0L), (buffer, dtype, (long)length)]), $"{dtype} x {length}: finite data flagged");

            Place(data, dtype, length - 1, special);
            backend.Write(buffer, 0, data);
            Assert.True(backend.FindNonFinite([(empty, dtype, 0L), (buffer, dtype, (long)length)]), $"{dtype} x {length}: 0x{special:X} at the end missed");
            // Counted short of it, the same buffer is finite: the kernel reads no element past its count.
            Assert.False(backend.FindNonFinite([(buffer, dtype, (long)length - 1)]), $"{dtype} x {length - 1}: read past the count");
        }
    }

    [Fact]
    public void A_gradient_shorter_than_the_count_is_refused_before_anything_is_written()
    {
        Backend backend = RequireExactSteps();
        byte[] parameters = RandomFloats(new Random(5), 64, -1, 1);
        using DeviceBuffer p = backend.Allocate(parameters.Length);
        using DeviceBuffer g = backend.Allocate(63 * 2);
        using DeviceBuffer m = backend.Allocate(64 * 4);
        using DeviceBuffer v = backend.Allocate(64 * 4);
        backend.Write(p, 0, parameters);
        var buffers = new StepBuffers(p, g, DType.BFloat16, m, v, null, DType.Float16, 64);
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.AdamWStep(buffers, AdamWConstants.For(new AdamWOptions(), 1, 1f)));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.SgdStep(buffers, SgdConstants.For(new SgdOptions(), true, 1f)));
        var back = new byte[parameters.Length];
        backend.Read(p, 0, back);
        Assert.Equal(parameters, back);
    }

    /// <summary>The device's backend, skipped (visibly) where it cannot promise the steps' rounding.</summary>
    private Backend RequireExactSteps()
    {
        Backend backend = Device.Backend;
        if (backend is OpenClBackend openCl)
            Assert.SkipUnless(openCl.KeepsSubnormals, $"'{openCl.Name}' flushes binary32 subnormals (no CL_FP_DENORM): the steps are refused there");
        return backend;
    }

    /// <summary>
    /// Runs one step on the device and on the CPU from the same random buffers and compares every byte of every
    /// buffer, guard included; the device's guard must also be the poison it was written with.
    /// </summary>
    private static void Compare(Backend device, bool adamW, DType gradientType, DType? workingType, int length, int seed,
        Action<Backend, StepBuffers> step, string what)
    {
        var random = new Random(seed);
        // Parameters near 1, moments as training leaves them (v >= 0), gradients over many binades so that some are
        // subnormal in their own dtype or become so once scaled and squared.
        byte[][] inputs =
        [
            RandomFloats(random, length, -1, 1),
            Narrow(Spread(random, length), gradientType),
            RandomFloats(random, length, -1e-3f, 1e-3f),
            RandomFloats(random, length, 0, 1e-6f),
            Poison(length * 2),
        ];
        string[] names = ["parameters", "gradient", adamW ? "first moment" : "momentum", "second moment", "working copy"];
        byte[][] cpu = Run(Device.Cpu.Backend, inputs, adamW, gradientType, workingType, length, step);
        byte[][] actual = Run(device, inputs, adamW, gradientType, workingType, length, step);
        string label = $"{what}, {gradientType} gradient, working {workingType?.ToString() ?? "none"}, {length} elements";
        for (int k = 0; k < inputs.Length; k++)
        {
            int payload = inputs[k].Length;
            Assert.True(actual[k].AsSpan(payload).SequenceEqual(Poison(GuardBytes)), $"{label}: {names[k]}'s guard was written");
            if (!actual[k].AsSpan().SequenceEqual(cpu[k])) Fail(label, names[k], k == 1 ? gradientType : k == 4 ? DType.Float16 : DType.Float32, actual[k], cpu[k], payload);
        }
    }

    /// <summary>Copies <paramref name="inputs"/> (each followed by a guard) onto <paramref name="backend"/>, steps, and reads every buffer back whole.</summary>
    private static byte[][] Run(Backend backend, byte[][] inputs, bool adamW, DType gradientType, DType? workingType, int length,
        Action<Backend, StepBuffers> step)
    {
        var buffers = new DeviceBuffer[inputs.Length];
        try
        {
            for (int k = 0; k < inputs.Length; k++)
            {
                buffers[k] = backend.Allocate(inputs[k].Length + GuardBytes);
                backend.Write(buffers[k], 0, [.. inputs[k], .. Poison(GuardBytes)]);
            }
            step(backend, new StepBuffers(buffers[0], buffers[1], gradientType, buffers[2], adamW ? buffers[3] : null,
                workingType is null ? null : buffers[4], workingType ?? DType.Float16, length));
            return [.. buffers.Select(b =>
            {
                var back = new byte[b.ByteCount];
                backend.Read(b, 0, back);
                return back;
            })];
        }
        finally
        {
            foreach (DeviceBuffer? b in buffers) b?.Dispose();
        }
    }

    private static byte[] RandomFloats(Random random, int length, float low, float high)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = low + (high - low) * random.NextSingle();
        return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    }

    /// <summary>Signed values 2^e * [1, 2) with e in [-40, 3]: some tiny enough that g * g underflows to a subnormal.</summary>
    private static float[] Spread(Random random, int length)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = (random.Next(2) == 0 ? -1 : 1) * MathF.ScaleB(1 + random.NextSingle(), random.Next(-40, 4));
        return values;
    }

    private static byte[] Narrow(float[] values, DType dtype) => dtype switch
    {
        DType.Float32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
        DType.Float16 => MemoryMarshal.AsBytes(values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray().AsSpan()).ToArray(),
        _ => MemoryMarshal.AsBytes(values.Select(v => BFloat16.RoundBits(BitConverter.SingleToUInt32Bits(v))).ToArray().AsSpan()).ToArray(),
    };

    /// <summary>Finite values of <paramref name="dtype"/> over its whole range, as raw bits.</summary>
    private static byte[] FiniteBits(DType dtype, int length, Random random)
    {
        var bytes = new byte[length * dtype.SizeOf()];
        random.NextBytes(bytes);
        for (int i = 0; i < length; i++)
        {
            // Clear the top exponent bit where the exponent is all ones: the value becomes finite, the rest stays random.
            if (dtype == DType.Float32 && (BitConverter.ToUInt32(bytes, i * 4) & 0x7F80_0000u) == 0x7F80_0000u) bytes[i * 4 + 3] &= 0xBF;
            if (dtype == DType.Float16 && (BitConverter.ToUInt16(bytes, i * 2) & 0x7C00) == 0x7C00) bytes[i * 2 + 1] &= 0xBF;
            if (dtype == DType.BFloat16 && (BitConverter.ToUInt16(bytes, i * 2) & 0x7F80) == 0x7F80) bytes[i * 2 + 1] &= 0xBF;
        }
        return bytes;
    }

    private static void Place(byte[] data, DType dtype, int index, uint bits)
    {
        if (dtype == DType.Float32) BitConverter.TryWriteBytes(data.AsSpan(index * 4), bits);
        else BitConverter.TryWriteBytes(data.AsSpan(index * 2), (ushort)bits);
    }

    private static byte[] Poison(int bytes)
    {
        var poison = new byte[bytes];
        Array.Fill(poison, (byte)0xFF);
        return poison;
    }

    /// <summary>Fails with the count of differing elements, the first few, and the largest distance in units in the last place.</summary>
    private static void Fail(string label, string name, DType dtype, byte[] actual, byte[] expected, int payload)
    {
        int size = dtype.SizeOf();
        var lines = new List<string>();
        int wrong = 0;
        long farthest = 0;
        for (int i = 0; i < payload / size; i++)
        {
            long got = size == 4 ? BitConverter.ToInt32(actual, i * 4) : BitConverter.ToInt16(actual, i * 2);
            long want = size == 4 ? BitConverter.ToInt32(expected, i * 4) : BitConverter.ToInt16(expected, i * 2);
            if (got == want) continue;
            farthest = Math.Max(farthest, Math.Abs(Ordered(got, size) - Ordered(want, size)));
            if (wrong++ < 6) lines.Add($"[{i}] 0x{got & (size == 4 ? 0xFFFF_FFFF : 0xFFFF):X} (cpu 0x{want & (size == 4 ? 0xFFFF_FFFF : 0xFFFF):X})");
        }
        Assert.Fail($"{label}: {name}: {wrong} of {payload / size} elements differ, by up to {farthest} ulp; first: {string.Join("; ", lines)}");
    }

    /// <summary>Sign-magnitude bits as a monotonic integer, so two floats' distance in ulps is a difference.</summary>
    private static long Ordered(long bits, int size)
    {
        long sign = size == 4 ? 0x8000_0000L : 0x8000L;
        long magnitude = bits & (sign - 1);
        return (bits & sign) != 0 ? -magnitude : magnitude;
    }
}

/// <summary><see cref="OptimizerStepsBackendTests"/> on the first OpenCL device (PoCL in CI).</summary>
public sealed class OpenClOptimizerStepsTests : OptimizerStepsBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);
}

/// <summary><see cref="OptimizerStepsBackendTests"/> on the first CUDA device; skipped (visibly) where there is none.</summary>
public sealed class CudaOptimizerStepsTests : OptimizerStepsBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
