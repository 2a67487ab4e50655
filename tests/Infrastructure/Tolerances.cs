namespace NativeTensor.Tests.Infrastructure;

/// <summary>
/// The one table of allowed differences from the reference, by op, dtype and backend. Test bodies never hold a
/// tolerance literal; they ask here, and each entry says where its number comes from.
/// </summary>
public static class Tolerances
{
    /// <summary>Largest allowed |actual - expected| in units in the last place, or 0 for bit-exact.</summary>
    public static int Ulps(string op, DType dtype, DeviceKind backend) => (op, dtype, backend) switch
    {
        // Windows move bytes and never round, so every dtype on every backend must be bit-exact.
        ("windows", _, _) => 0,
        // Conversions are specified to the bit (round to nearest even, NaN rules), so every backend must match exactly.
        ("convert", _, _) => 0,
        _ => throw new ArgumentException($"no tolerance entry for ({op}, {dtype}, {backend}): add one with its source"),
    };
}
