using System.Runtime.InteropServices;
using NativeTensor.Cases;

namespace NativeTensor.Tests.Infrastructure;

/// <summary>Tensors from raw bytes, poisoning and guard regions: the plumbing shared by every parity suite.</summary>
public static class TestTensors
{
    /// <summary>The byte every output is filled with before a launch; an element a kernel forgot keeps it.</summary>
    public const byte Poison = CaseBytes.Poison;

    /// <summary>Bytes a guarded buffer carries after its payload.</summary>
    public const int GuardBytes = 4096;

    /// <summary>A tensor on <paramref name="device"/> holding exactly <paramref name="bytes"/>.</summary>
    public static Tensor FromBytes(DType dtype, long[] shape, Device device, byte[] bytes)
        => CaseBytes.FromBytes(dtype, shape, device, bytes);

    /// <summary>A copy of <paramref name="data"/> on <paramref name="device"/>, with no host tensor left behind.</summary>
    public static Tensor OnDevice(float[] data, long[] shape, Device device) => CaseBytes.OnDevice(data, shape, device);

    /// <summary>The tensor's bytes, copied to the host.</summary>
    public static byte[] Bytes(Tensor tensor) => CaseBytes.Bytes(tensor);

    /// <summary>Random bits: for float dtypes this includes NaN payloads, infinities, subnormals and ±0.</summary>
    public static byte[] RandomBytes(Random random, long count) => CaseBytes.RandomBytes(random, count);

    /// <summary>A tensor of <paramref name="shape"/> filled with <see cref="Poison"/>.</summary>
    public static Tensor Poisoned(DType dtype, long[] shape, Device device) => CaseBytes.Poisoned(dtype, shape, device);

    public static void Fill(Tensor tensor, byte value)
    {
        var bytes = new byte[tensor.ByteCount];
        Array.Fill(bytes, value);
        tensor.Device.Backend.Write(tensor.Buffer, 0, bytes);
    }

    /// <summary>Elements of the host arrays, typed by dtype, so the reference runs on real element types.</summary>
    public static byte[] Typed(DType dtype, byte[] bytes, Func<Array, Array> reference) => dtype switch
    {
        DType.Float32 => Raw(reference(MemoryMarshal.Cast<byte, float>(bytes).ToArray())),
        DType.Float16 => Raw(reference(MemoryMarshal.Cast<byte, Half>(bytes).ToArray())),
        DType.BFloat16 => Raw(reference(MemoryMarshal.Cast<byte, BFloat16>(bytes).ToArray())),
        DType.Int32 => Raw(reference(MemoryMarshal.Cast<byte, int>(bytes).ToArray())),
        DType.Int64 => Raw(reference(MemoryMarshal.Cast<byte, long>(bytes).ToArray())),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    private static byte[] Raw(Array array) => array switch
    {
        float[] a => MemoryMarshal.AsBytes(a.AsSpan()).ToArray(),
        Half[] a => MemoryMarshal.AsBytes(a.AsSpan()).ToArray(),
        BFloat16[] a => MemoryMarshal.AsBytes(a.AsSpan()).ToArray(),
        int[] a => MemoryMarshal.AsBytes(a.AsSpan()).ToArray(),
        long[] a => MemoryMarshal.AsBytes(a.AsSpan()).ToArray(),
        _ => throw new ArgumentException(array.GetType().Name),
    };

    /// <summary>Asserts two byte arrays are equal and, if not, says where they first differ.</summary>
    public static void BitExact(byte[] expected, byte[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int at = expected.AsSpan().CommonPrefixLength(actual);
        if (at != expected.Length)
            Assert.Fail($"{what}: first difference at byte {at} of {expected.Length}: expected 0x{expected[at]:X2}, got 0x{actual[at]:X2}");
    }
}
