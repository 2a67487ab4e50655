namespace NativeTensor.Tests.Infrastructure;

/// <summary>Bit patterns that break careless kernels, per dtype: NaN payloads (quiet and signalling), ±0, subnormals, ±Inf, extremes.</summary>
public static class SpecialValues
{
    public static ulong[] Bits(DType dtype) => dtype switch
    {
        DType.Float32 => [0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FBFFFFF, 0x00000000, 0x80000000, 0x00000001, 0x807FFFFF,
                          0x7F800000, 0xFF800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000],
        DType.Float16 => [0x7E00, 0xFE01, 0x7C01, 0x7DFF, 0x0000, 0x8000, 0x0001, 0x83FF, 0x7C00, 0xFC00, 0x7BFF, 0xFBFF, 0x3C00],
        DType.BFloat16 => [0x7FC0, 0xFFC1, 0x7F81, 0x7FBF, 0x0000, 0x8000, 0x0001, 0x807F, 0x7F80, 0xFF80, 0x7F7F, 0xFF7F, 0x3F80],
        DType.Int32 => [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000],
        DType.Int64 => [0, 1, ulong.MaxValue, long.MaxValue, 0x8000000000000000],
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary><paramref name="count"/> elements cycling through the special values, as little-endian bytes.</summary>
    public static byte[] Fill(DType dtype, long count)
    {
        ulong[] bits = Bits(dtype);
        int size = dtype.SizeOf();
        var bytes = new byte[count * size];
        for (long i = 0; i < count; i++)
            BitConverter.GetBytes(bits[i % bits.Length]).AsSpan(0, size).CopyTo(bytes.AsSpan((int)(i * size)));
        return bytes;
    }
}
