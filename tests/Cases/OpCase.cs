namespace NativeTensor.Cases;

/// <summary>
/// One op on one set of inputs, described once and run by both the parity tests and perf (as ggml's test-backend-ops
/// drives correctness and performance from one test case): the case builds its inputs from its own fields (shape,
/// dtype, seed, special values), runs the op on a device, computes what <c>src/Tensors/Reference</c> says, and judges
/// the difference with the family's entry in <c>Tolerances</c>. It also says what the op must move and compute, so
/// perf's GB/s and GFLOP/s are figures of the very case that was checked.
/// </summary>
/// <remarks>
/// These files are compiled into the test assembly and linked into perf (<c>perf/NativeTensor.Perf.csproj</c>), so
/// they use no test framework: a failure is a sentence, and each side turns it into its own verdict (an xunit failure,
/// a "FAIL" line and an untimed device).
/// </remarks>
public interface IOpCase
{
    /// <summary>The op as perf's table names it, e.g. <c>windows.gather, host starts</c>.</summary>
    string Op { get; }

    /// <summary>The inputs in words: enough to rebuild the case.</summary>
    string Name { get; }

    /// <summary>Bytes the op must read and write at least once (principle 5).</summary>
    long MovedBytes { get; }

    /// <summary>What the result is held to, e.g. <c>bit-exact vs WindowsReference</c>: the family's tolerance in words.</summary>
    string Standard { get; }

    /// <summary>Floating-point operations the op must do; 0 for ops that only move or convert.</summary>
    long Flops { get; }

    /// <summary>Runs the op on <paramref name="device"/> and returns where it parts from the reference, or null.</summary>
    string? Check(Device device);

    /// <summary>The inputs placed on <paramref name="device"/> and the op as one repeatable call, for timing.</summary>
    PreparedCase Prepare(Device device);
}

/// <summary>A case's tensors on a device and its op as a call that perf can repeat; disposing frees the tensors.</summary>
public sealed class PreparedCase(Action run, params IDisposable?[] owned) : IDisposable
{
    /// <summary>Runs the op once on the prepared inputs (in place ops keep their values in range across repeats).</summary>
    public Action Run { get; } = run;

    public void Dispose()
    {
        foreach (IDisposable? o in owned) o?.Dispose();
    }
}

/// <summary>Host bytes in and out of devices, and byte comparisons that say where they differ: the plumbing of every case.</summary>
public static class CaseBytes
{
    /// <summary>The byte every output is filled with before a launch; an element a kernel forgot keeps it.</summary>
    public const byte Poison = 0xFF;

    /// <summary>A tensor of <paramref name="dtype"/> and <paramref name="shape"/> on <paramref name="device"/> holding exactly <paramref name="bytes"/>.</summary>
    public static Tensor FromBytes(DType dtype, long[] shape, Device device, byte[] bytes)
    {
        Tensor tensor = Tensor.Empty(dtype, shape, device);
        if (tensor.ByteCount != bytes.LongLength)
        {
            tensor.Dispose();
            throw new ArgumentException($"{bytes.LongLength} bytes for a {dtype} tensor of {tensor.ByteCount} bytes", nameof(bytes));
        }
        device.Backend.Write(tensor.Buffer, 0, bytes);
        return tensor;
    }

    /// <summary>The tensor's bytes, copied to the host.</summary>
    public static byte[] Bytes(Tensor tensor)
    {
        var bytes = new byte[tensor.ByteCount];
        tensor.Device.Backend.Read(tensor.Buffer, 0, bytes);
        return bytes;
    }

    /// <summary>Random bits: for float dtypes this includes NaN payloads, infinities, subnormals and ±0.</summary>
    public static byte[] RandomBytes(Random random, long count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>
    /// <paramref name="count"/> finite values of <paramref name="dtype"/> between 2^-20 and 2^15 in magnitude, every
    /// binade of that range alike, so no element takes a rare path (subnormals, overflow): the inputs perf times with.
    /// </summary>
    public static byte[] Magnitudes(DType dtype, long count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (long i = 0; i < values.LongLength; i++) values[i] = (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-20, 15)));
        byte[] single = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        return dtype == DType.Float32 ? single : ConvertCase.Expected(DType.Float32, dtype, single);
    }

    /// <summary>A tensor of <paramref name="shape"/> filled with <see cref="Poison"/>, so an element no kernel wrote shows.</summary>
    public static Tensor Poisoned(DType dtype, long[] shape, Device device)
    {
        Tensor tensor = Tensor.Empty(dtype, shape, device);
        var bytes = new byte[tensor.ByteCount];
        Array.Fill(bytes, Poison);
        device.Backend.Write(tensor.Buffer, 0, bytes);
        return tensor;
    }

    /// <summary>A copy of <paramref name="data"/> on <paramref name="device"/>, leaving no host tensor to the finaliser.</summary>
    public static Tensor OnDevice(float[] data, long[] shape, Device device)
    {
        using Tensor host = Tensor.FromArray(data, shape);
        return host.To(device);
    }

    /// <summary>An Int64 tensor of <paramref name="values"/> on <paramref name="device"/>, leaving no host tensor to the finaliser.</summary>
    public static Tensor OnDevice(long[] values, Device device)
    {
        using Tensor host = Tensor.FromArray(values);
        return host.To(device);
    }

    /// <summary>Null when the two are equal; otherwise where they first differ, in bytes and in elements of <paramref name="elementSize"/>.</summary>
    public static string? Differs(byte[] expected, byte[] actual, string what, int elementSize = 1)
    {
        if (expected.Length != actual.Length) return $"{what}: {actual.Length} bytes, the reference has {expected.Length}";
        int at = expected.AsSpan().CommonPrefixLength(actual);
        if (at == expected.Length) return null;
        return $"{what}: first difference at byte {at} of {expected.Length} (element {at / elementSize}): expected 0x{expected[at]:X2}, got 0x{actual[at]:X2}";
    }
}
