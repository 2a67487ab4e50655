using System.Runtime.InteropServices;
using FsCheck;
using FsCheck.Fluent;
using NativeTensor.Cases;
using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// What every backend must do for the fused gather-convert, <c>Windows.Gather(..., outputType)</c>: equal, bit for bit,
/// both the unfused device composition (<see cref="Windows.Gather(Tensor, ReadOnlySpan{long}, int, Tensor?, DType?)"/>
/// without conversion, then <see cref="Precision.Convert"/>, each already verified on its own) and the reference
/// composition (<see cref="WindowsReference.Gather{T}"/>, then <see cref="PrecisionReference.Convert"/> per element), in
/// every direction, with host and device starts, into a poisoned reused output; write nothing past the output; and
/// refuse bad dtypes without writing. Subclassed once per backend; a missing backend skips with its reason.
/// </summary>
public abstract class GatherConvertParityTests
{
    /// <summary>The device under test; throws a skip (or a failure, when required) if it is absent.</summary>
    protected abstract Device Device { get; }

    /// <summary>A converting batch large enough to be split across cores, cut so a core's piece starts inside a window.</summary>
    [Theory]
    [InlineData(DType.Float32, DType.Float16, 24, 64, 300)]
    [InlineData(DType.BFloat16, DType.Float32, 37, 41, 287)]
    public void Converting_batches_split_across_cores_equal_the_reference(DType from, DType to, int batch, int window, int row)
    {
        Device device = Device;
        var random = new Random(batch * row);
        long frameCount = 2000;
        byte[] frames = RandomBytes(random, frameCount * row * from.SizeOf());
        long[] starts = Enumerable.Range(0, batch).Select(_ => random.NextInt64(0, frameCount - window + 1)).ToArray();
        starts[^1] = frameCount - window;
        using Tensor source = FromBytes(from, [frameCount, row], device, frames);
        using Tensor output = Poisoned(to, [batch, window, row], device);
        Windows.Gather(source, starts, window, output, to);
        BitExact(Reference(from, to, frames, frameCount, row, starts, window), Bytes(output), $"{from} -> {to}, {batch} x {window} x {row}");
    }

    /// <summary>Random cases per property: fewer where each launch costs more.</summary>
    protected virtual int PropertyRuns => 200;

    private const int N = 50, D = 7, W = 10;

    /// <summary>The six directions among Float32, Float16 and BFloat16.</summary>
    private static readonly (DType From, DType To)[] Directions =
    [
        (DType.Float32, DType.Float16), (DType.Float32, DType.BFloat16), (DType.Float16, DType.Float32),
        (DType.BFloat16, DType.Float32), (DType.Float16, DType.BFloat16), (DType.BFloat16, DType.Float16),
    ];

    public static TheoryData<DType, DType> AllDirections()
    {
        var data = new TheoryData<DType, DType>();
        foreach ((DType from, DType to) in Directions) data.Add(from, to);
        return data;
    }

    /// <summary>Row sizes beside every vector width, plus the sequence-embedding 287 and the cap 300.</summary>
    private static readonly int[] EdgeRows = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 287, 300];

    private static readonly Gen<GatherConvertCase> Cases =
        from direction in Gen.Elements(Directions)
        from rest in Gen.OneOf(
            Gen.Constant(Array.Empty<long>()),
            Gen.OneOf(Gen.Elements(EdgeRows), Gen.Choose(1, 300)).Select(d => new[] { (long)d }),
            from a in Gen.Choose(1, 17) from b in Gen.Choose(1, 17) select new long[] { a, b })
        from frames in Gen.OneOf(Gen.Choose(1, 16), Gen.Choose(1, 64))
        from window in Gen.OneOf(Gen.Choose(1, frames), Gen.Constant(frames), Gen.Constant(1))
        from batch in Gen.OneOf(Gen.Choose(0, 3), Gen.Choose(1, 24))
        from starts in WindowCase.ValidStarts(frames, window, batch)
        from seed in Gen.Choose(0, int.MaxValue)
        select new GatherConvertCase(direction.From, direction.To, [frames, .. rest], window, starts, seed);

    [Fact]
    public void Every_direction_equals_the_unfused_and_the_reference_composition_into_a_reused_output()
    {
        Device device = Device;
        // The shared case: the unfused composition, host and device starts into a poisoned reused output, a new output.
        Prop.ForAll(Cases.ToArbitrary(), c => CaseAssert.Passes(c, device)).Check(Config.QuickThrowOnFailure.WithMaxTest(PropertyRuns));
    }

    /// <summary>Every special value of each source dtype, in windows of the sequence-embedding row 287.</summary>
    [Theory]
    [MemberData(nameof(AllDirections))]
    public void Special_values_convert_exactly(DType from, DType to)
    {
        Device device = Device;
        CaseAssert.Passes(new GatherConvertCase(from, to, [40, 287], 30, [0, 10, 3, 9, 40 - 30], 0, SpecialFrames: true), device);
    }

    /// <summary>Runs both backend entry points into a buffer longer than the output: the bytes after it must keep their poison.</summary>
    [Theory]
    [MemberData(nameof(AllDirections))]
    public void Kernels_write_nothing_past_the_output(DType from, DType to)
    {
        Device device = Device;
        var backend = device.Backend;
        foreach ((int window, int row) in new[] { (1, 287), (7, 3), (30, 287), (5, 1) })
        {
            const int frameCount = 97;
            byte[] frames = RandomBits(from, frameCount * row, new Random(window * 1000 + row));
            long[] starts = [0, frameCount - window, 13, 1, frameCount - window, 50];
            long outputBytes = (long)starts.Length * window * row * to.SizeOf();
            using var source = backend.Allocate(frames.Length);
            using var target = backend.Allocate(outputBytes + GuardBytes);
            using var deviceStarts = backend.Allocate(starts.Length * sizeof(long));
            backend.Write(source, 0, frames);
            backend.Write(deviceStarts, 0, MemoryMarshal.AsBytes(starts.AsSpan()));
            byte[] expected = Reference(from, to, frames, frameCount, row, starts, window);
            foreach (string path in new[] { "host starts", "device starts" })
            {
                backend.Write(target, 0, Enumerable.Repeat(Poison, (int)(outputBytes + GuardBytes)).ToArray());
                if (path == "host starts") backend.GatherWindows(source, from, row, starts, window, target, to);
                else backend.GatherWindows(source, from, frameCount, row, deviceStarts, starts.Length, window, target, to);
                var after = new byte[outputBytes + GuardBytes];
                backend.Read(target, 0, after);
                string what = $"{from} -> {to}, window {window}, row {row}, {path}";
                BitExact(expected, after[..(int)outputBytes], what);
                Assert.True(after.AsSpan((int)outputBytes).IndexOfAnyExcept(Poison) < 0, $"{what}: a kernel wrote into the guard region");
            }
        }
    }

    [Fact]
    public void A_bad_device_start_is_clamped_and_flagged_on_devices_and_refused_before_writing_on_the_cpu()
    {
        Device device = Device;
        byte[] bytes = RandomBits(DType.Float32, N * D, new Random(5));
        using Tensor frames = FromBytes(DType.Float32, [N, D], device, bytes);
        using Tensor output = Poisoned(DType.BFloat16, [3, W, D], device);
        using Tensor starts = WindowsParityTests.OnDevice([3, N - W + 5, -2], device);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Gather(frames, starts, W, output, DType.BFloat16));
        Assert.Contains($"starts[1] = {N - W + 5}", e.Message);
        byte[] after = Bytes(output);
        if (device.Kind == DeviceKind.Cpu)
            Assert.True(after.AsSpan().IndexOfAnyExcept(Poison) < 0, "the CPU wrote before refusing");
        else // the kernel clamped each bad start into range: every element is a defined conversion from inside frames
            BitExact(Reference(DType.Float32, DType.BFloat16, bytes, N, D, [3, N - W, 0], W), after, "clamped windows");
    }

    [Theory]
    [InlineData("integer frames", "host starts")]
    [InlineData("integer frames", "device starts")]
    [InlineData("integer outputType", "host starts")]
    [InlineData("integer outputType", "device starts")]
    [InlineData("output dtype", "host starts")]
    [InlineData("output dtype", "device starts")]
    public void Bad_dtypes_are_refused_before_anything_is_written(string rule, string path)
    {
        Device device = Device;
        (DType frameType, DType outputType, DType outputDType, string fragment) = rule switch
        {
            "integer frames" => (DType.Int32, DType.Float32, DType.Float32, "outputType"),
            "integer outputType" => (DType.Float32, DType.Int64, DType.Int64, "outputType"),
            _ => (DType.Float32, DType.Float16, DType.BFloat16, "output is BFloat16 but outputType is Float16"),
        };
        using Tensor frames = FromBytes(frameType, [N, D], device, RandomBytes(new Random(7), N * D * frameType.SizeOf()));
        using Tensor output = Poisoned(outputDType, [3, W, D], device);
        using Tensor starts = WindowsParityTests.OnDevice([0, 1, 2], device);
        var e = Assert.Throws<ArgumentException>(() => path == "host starts"
            ? Windows.Gather(frames, [0L, 1L, 2L], W, output, outputType)
            : Windows.Gather(frames, starts, W, output, outputType));
        Assert.Contains(fragment, e.Message);
        Assert.True(Bytes(output).AsSpan().IndexOfAnyExcept(Poison) < 0, "a refused call wrote into the output");
    }

    private static byte[] RandomBits(DType dtype, long count, Random random) => GatherConvertCase.RandomBits(dtype, count, random);

    private static byte[] Reference(DType from, DType to, byte[] frames, long frameCount, long rowElements, long[] starts, int window) =>
        GatherConvertCase.Reference(from, to, frames, frameCount, rowElements, starts, window);
}

public sealed class CpuGatherConvertTests : GatherConvertParityTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

public sealed class CpuScalarGatherConvertTests : GatherConvertParityTests
{
    protected override Device Device => Backends.CpuScalar;
}

public sealed class Cpu128GatherConvertTests : GatherConvertParityTests
{
    protected override Device Device => Backends.Cpu128;
}

public sealed class Cpu256GatherConvertTests : GatherConvertParityTests
{
    protected override Device Device => Backends.Cpu256;
}

public sealed class OpenClGatherConvertParityTests : GatherConvertParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);

    protected override int PropertyRuns => 40;
}

public sealed class CudaGatherConvertParityTests : GatherConvertParityTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
