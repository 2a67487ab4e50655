namespace NativeTensor;

/// <summary>The element type of a <see cref="Tensor"/>.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32.</summary>
    Float32,
    /// <summary>IEEE 754 binary16 (<see cref="Half"/>).</summary>
    Float16,
    /// <summary>Brain float: the top 16 bits of a binary32 (<see cref="NativeTensor.BFloat16"/>).</summary>
    BFloat16,
    /// <summary>Signed 32-bit integer.</summary>
    Int32,
    /// <summary>Signed 64-bit integer.</summary>
    Int64,
}

/// <summary>Sizes and CLR mappings of <see cref="DType"/>.</summary>
public static class DTypes
{
    /// <summary>Bytes per element of <paramref name="dtype"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined <see cref="DType"/>.</exception>
    public static int SizeOf(this DType dtype) => dtype switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.Float16 or DType.BFloat16 => 2,
        DType.Int64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a defined DType"),
    };

    /// <summary>The <see cref="DType"/> whose elements are stored as <typeparamref name="T"/>.</summary>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not one of float, Half, BFloat16, int, long.</exception>
    public static DType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return DType.Float32;
        if (typeof(T) == typeof(Half)) return DType.Float16;
        if (typeof(T) == typeof(BFloat16)) return DType.BFloat16;
        if (typeof(T) == typeof(int)) return DType.Int32;
        if (typeof(T) == typeof(long)) return DType.Int64;
        throw new ArgumentException(
            $"element type {typeof(T).Name} has no DType: use float, Half, BFloat16, int or long", nameof(T));
    }
}
