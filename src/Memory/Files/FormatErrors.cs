namespace NativeTensor.Memory.Files;

/// <summary>The one shape of every refusal of a tensor file: <c>InvalidDataException("path: rule")</c>; and the rules both formats share.</summary>
internal static class FormatErrors
{
    /// <summary>NumPy 2's limit on an array's axes (NPY_MAXDIMS); NumPy 1.x allows 32.</summary>
    public const int MaxRank = 64;

    public static InvalidDataException Refuse(string path, string rule) => new($"{path}: {rule}");

    /// <summary>
    /// The data bytes of <paramref name="shape"/> with elements of <paramref name="itemSize"/> bytes, after the rules
    /// NumPy applies: at most <see cref="MaxRank"/> axes, and the product of the non-zero extents times the item size
    /// within 63 bits, whichever extent is zero and wherever it stands (so (0, 2^62, 2^62) is refused as
    /// (2^62, 2^62, 0) is, and a huge shape never reaches a message).
    /// </summary>
    public static long ShapeBytes(string path, string what, IReadOnlyList<long> shape, int itemSize)
    {
        if (shape.Count > MaxRank) throw Refuse(path, $"{what} has {shape.Count} axes: at most {MaxRank}");
        long product = itemSize;
        bool empty = false;
        foreach (long extent in shape)
        {
            if (extent == 0) { empty = true; continue; }
            try { product = checked(product * extent); }
            catch (OverflowException) { throw Refuse(path, $"{what} ({string.Join(", ", shape)}) overflows a 64-bit byte count"); }
        }
        return empty ? 0 : product;
    }
}
