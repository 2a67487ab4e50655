using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Cases.CaseBytes;

namespace NativeTensor.Cases;

/// <summary>Which <see cref="Windows"/> path a <see cref="WindowCase"/> runs.</summary>
public enum WindowOp
{
    /// <summary><see cref="Windows.Gather(Tensor, ReadOnlySpan{long}, int, Tensor?)"/>: into a new output, then into a reused poisoned one.</summary>
    GatherHostStarts,

    /// <summary><see cref="Windows.Gather(Tensor, Tensor, int, Tensor?)"/> with the starts on the device, into a poisoned output.</summary>
    GatherDeviceStarts,

    /// <summary><see cref="Windows.Eager"/> at the case's stride, its kernel again into a poisoned output, and the lazy gather of the same windows.</summary>
    Eager,
}

/// <summary>
/// One windows problem: frames of some dtype and shape (random bits from <see cref="Seed"/>, so NaN payloads and odd
/// byte patterns travel, or the shared special values), a window, a stride, a batch of starts, and the path that runs.
/// Windows move bytes and never round: <c>Tolerances.Ulps("windows", ...)</c> is 0, so every path must be bit-exact.
/// </summary>
public sealed partial record WindowCase(DType DType, long[] FrameShape, int Window, int Stride, long[] Starts, int Seed,
    WindowOp Op = WindowOp.GatherHostStarts, bool SpecialFrames = false) : IOpCase
{
    public long FrameCount => FrameShape[0];

    public long RowElements => FrameShape.Skip(1).Aggregate(1L, (a, b) => a * b);

    public long RowBytes => RowElements * DType.SizeOf();

    /// <summary>Windows the eager path materialises: <see cref="Windows.Count"/> at the case's stride.</summary>
    public long EagerCount => Windows.Count(FrameCount, Window, Stride);

    public override string ToString() =>
        $"{Op}: {DType} frames [{string.Join(", ", FrameShape)}]{(SpecialFrames ? " of special values" : "")}, window {Window}, stride {Stride}, " +
        $"starts [{(Starts.Length <= 40 ? string.Join(", ", Starts) : $"{Starts.Length} starts")}], seed {Seed}";

    string IOpCase.Op => Op switch
    {
        WindowOp.GatherHostStarts => "windows.gather, host starts",
        WindowOp.GatherDeviceStarts => "windows.gather, device starts",
        _ => $"windows.eager",
    };

    public string Name => ToString();

    /// <summary>A gather reads and writes each output byte once; eager writes every window of the stride once.</summary>
    public long MovedBytes => 2 * Window * RowBytes * (Op == WindowOp.Eager ? EagerCount : Starts.Length);

    public string Standard => "bit-exact vs WindowsReference";

    public long Flops => 0;

    /// <summary>
    /// <paramref name="batch"/> starts drawn from <paramref name="seed"/>, with the first and the last valid window
    /// among them whenever the batch has room for both: perf's fixed cases, its timed shapes included.
    /// </summary>
    public static WindowCase Drawn(DType dtype, long[] frameShape, int window, int batch, int seed, WindowOp op, int stride = 1)
    {
        var random = new Random(seed);
        long last = frameShape[0] - window;
        long[] starts = [.. Enumerable.Range(0, batch).Select(_ => random.NextInt64(0, last + 1))];
        if (batch >= 2) (starts[0], starts[^1]) = (0, last);
        return new WindowCase(dtype, frameShape, window, stride, starts, seed, op);
    }

    /// <summary>The frames' bytes: random bits from <see cref="Seed"/>, or the special values cycled.</summary>
    public byte[] FrameBytes() => SpecialFrames
        ? SpecialValues.Fill(DType, FrameCount * RowElements)
        : RandomBytes(new Random(Seed), FrameCount * RowBytes);

    /// <summary>The frames on <paramref name="device"/>, and their bytes for the reference.</summary>
    public (Tensor Frames, byte[] Bytes) Frames(Device device)
    {
        byte[] bytes = FrameBytes();
        return (FromBytes(DType, FrameShape, device, bytes), bytes);
    }

    /// <summary>What <see cref="WindowsReference.Gather{T}"/> gives for <see cref="Starts"/> (byte rows: the reference is generic over the element).</summary>
    public byte[] Expected(byte[] frames) => WindowsReference.Gather(frames, FrameCount, RowBytes, Starts, Window);

    /// <summary>What <see cref="WindowsReference.Eager{T}"/> gives at the case's stride.</summary>
    public byte[] ExpectedEager(byte[] frames) => WindowsReference.Eager(frames, FrameCount, RowBytes, Window, Stride);

    public string? Check(Device device) => Op switch
    {
        WindowOp.GatherHostStarts => CheckHostStarts(device),
        WindowOp.GatherDeviceStarts => CheckDeviceStarts(device),
        _ => CheckEager(device),
    };

    private long[] OutputShape(long batch) => [batch, Window, .. FrameShape.Skip(1)];

    private string? CheckHostStarts(Device device)
    {
        (Tensor frames, byte[] bytes) = Frames(device);
        using (frames)
        using (Tensor fresh = Windows.Gather(frames, Starts, Window))
        using (Tensor reused = Poisoned(DType, OutputShape(Starts.Length), device))
        {
            if (!ReferenceEquals(device, fresh.Device)) return $"the new output is on {fresh.Device}, not {device}";
            if (!fresh.Shape.SequenceEqual(OutputShape(Starts.Length)))
                return $"the new output has shape [{string.Join(", ", fresh.Shape)}], not [{string.Join(", ", OutputShape(Starts.Length))}]";
            byte[] expected = Expected(bytes);
            if (Differs(expected, Bytes(fresh), "new output", DType.SizeOf()) is { } failure) return failure;
            if (!ReferenceEquals(reused, Windows.Gather(frames, Starts, Window, reused))) return "the output tensor passed in was not returned";
            return Differs(expected, Bytes(reused), "reused poisoned output", DType.SizeOf());
        }
    }

    private string? CheckDeviceStarts(Device device)
    {
        (Tensor frames, byte[] bytes) = Frames(device);
        using (frames)
        using (Tensor starts = OnDevice(Starts, device))
        using (Tensor output = Poisoned(DType, OutputShape(Starts.Length), device))
        {
            if (!ReferenceEquals(output, Windows.Gather(frames, starts, Window, output))) return "the output tensor passed in was not returned";
            return Differs(Expected(bytes), Bytes(output), "poisoned output", DType.SizeOf());
        }
    }

    /// <summary>
    /// Eager against the reference; the strided kernel again into a poisoned output (eager allocates its own, so a
    /// window it skipped would not show); and the lazy gather of the windows picked by <see cref="Starts"/> (taken
    /// modulo the window count) against the same rows of eager: lazy and eager must agree.
    /// </summary>
    private string? CheckEager(Device device)
    {
        long count = EagerCount;
        long[] picks = [.. Starts.Select(s => s % count)];
        long[] starts = [.. picks.Select(k => k * Stride)];
        (Tensor frames, byte[] bytes) = Frames(device);
        using (frames)
        using (Tensor eager = Windows.Eager(frames, Window, Stride))
        using (Tensor poisoned = Poisoned(DType, [.. eager.Shape], device))
        using (Tensor lazy = Windows.Gather(frames, starts, Window))
        {
            if (eager.Shape[0] != count) return $"eager made {eager.Shape[0]} windows, Windows.Count says {count}";
            byte[] eagerBytes = Bytes(eager);
            if (Differs(ExpectedEager(bytes), eagerBytes, $"eager, stride {Stride}", DType.SizeOf()) is { } failure) return failure;
            device.Backend.StridedWindows(frames.Buffer, RowBytes, count, Window, Stride, poisoned.Buffer);
            if (Differs(eagerBytes, Bytes(poisoned), "strided kernel into a poisoned output", DType.SizeOf()) is { } unwritten) return unwritten;
            long block = Window * RowBytes;
            byte[] rows = [.. picks.SelectMany(k => eagerBytes.AsSpan((int)(k * block), (int)block).ToArray())];
            return Differs(rows, Bytes(lazy), "lazy gather vs the same rows of eager", DType.SizeOf());
        }
    }

    /// <summary>The frames and starts on the device and an output to reuse: the gather as perf repeats it.</summary>
    public PreparedCase Prepare(Device device)
    {
        (Tensor frames, _) = Frames(device);
        if (Op == WindowOp.Eager) return new PreparedCase(() => Windows.Eager(frames, Window, Stride).Dispose(), frames);
        Tensor output = Tensor.Empty(DType, OutputShape(Starts.Length), device);
        if (Op == WindowOp.GatherHostStarts) return new PreparedCase(() => Windows.Gather(frames, Starts, Window, output), frames, output);
        Tensor starts = OnDevice(Starts, device);
        return new PreparedCase(() => Windows.Gather(frames, starts, Window, output), frames, output, starts);
    }
}
