using NativeTensor.Reference;

namespace NativeTensor.Cases;

/// <summary>
/// Rows for the Moments tests: N rows of G groups of d features, drawn correlated (a shared component) around chosen means
/// and scales, and rounded once to the batch dtype, so the values a kernel sees and the reference's doubles are the same
/// numbers.
/// </summary>
public sealed class MomentsData
{
    private MomentsData(float[] values, int rows, int groups, int features, DType dtype)
    {
        Values = values;
        Rows = rows;
        Groups = groups;
        Features = features;
        DType = dtype;
    }

    /// <summary>[Rows, Groups, Features], each exactly representable in <see cref="DType"/>.</summary>
    public float[] Values { get; }

    public int Rows { get; }
    public int Groups { get; }
    public int Features { get; }
    public DType DType { get; }

    /// <summary>x[i, g, j] = mean[j] + scale[j] (z[i, g, j] + z[i, g] / 2), z standard normal, rounded to <paramref name="dtype"/>.</summary>
    public static MomentsData Random(int rows, int groups, int features, DType dtype, int seed, double mean = 0, double scale = 1)
    {
        var random = new Random(seed);
        double[] means = [.. Enumerable.Range(0, features).Select(j => mean * (1 + 0.25 * (j % 3)))];
        double[] scales = [.. Enumerable.Range(0, features).Select(j => scale * (0.5 + random.NextDouble()))];
        var values = new float[rows * groups * features];
        for (int i = 0; i < rows; i++)
            for (int g = 0; g < groups; g++)
            {
                double shared = Normal(random);
                for (int j = 0; j < features; j++)
                    values[(i * groups + g) * features + j] = (float)(means[j] + scales[j] * (Normal(random) + shared / 2));
            }
        return new MomentsData(RoundTo(values, dtype), rows, groups, features, dtype);
    }

    /// <summary>Given values (already representable in <paramref name="dtype"/>), as data.</summary>
    public static MomentsData Of(float[] values, int rows, int groups, int features, DType dtype = DType.Float32) =>
        new(values, rows, groups, features, dtype);

    /// <summary>Rows [first, first + count) as a tensor of <see cref="DType"/> on <paramref name="device"/>: [count, d] when <paramref name="rank2"/>, else [count, G, d].</summary>
    public Tensor Batch(int first, int count, Device device, bool rank2 = false)
    {
        int row = Groups * Features;
        long[] shape = rank2 ? [count, Features] : [count, Groups, Features];
        using Tensor single = Tensor.FromArray(Values[(first * row)..((first + count) * row)], shape);
        using Tensor typed = Precision.Convert(single, DType);
        return typed.To(device);
    }

    /// <summary>The whole data as one batch.</summary>
    public Tensor All(Device device) => Batch(0, Rows, device);

    /// <summary>Group <paramref name="group"/>'s rows as doubles, [Rows, Features] flattened, for the reference.</summary>
    public double[] Group(int group, IEnumerable<int>? rows = null)
    {
        double[] all = MomentsReference.Group([.. Values.Select(v => (double)v)], Groups, Features, group);
        if (rows is null) return all;
        return [.. rows.SelectMany(i => all.AsSpan(i * Features, Features).ToArray())];
    }

    public static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>Each value rounded to <paramref name="dtype"/> and widened back (exact), by the library's bit-exact conversion.</summary>
    private static float[] RoundTo(float[] values, DType dtype)
    {
        if (dtype == DType.Float32) return values;
        using Tensor single = Tensor.FromArray(values);
        using Tensor narrow = Precision.Convert(single, dtype);
        using Tensor wide = Precision.Convert(narrow, DType.Float32);
        return wide.ToArray<float>();
    }
}
