using NativeTensor.Reference;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Cases;

/// <summary>
/// One <see cref="Moments"/> run: <see cref="Rows"/> rows of <see cref="Groups"/> groups of <see cref="Features"/>
/// correlated features around <see cref="Mean"/> with spread <see cref="Scale"/> (<see cref="MomentsData.Random"/>),
/// rounded to <see cref="DType"/>, fed in random batch sizes (1, small, around a block, anything; now and then empty)
/// shuffled and dealt to <see cref="Shards"/> states, optionally serialised and read back, and merged in a random tree.
/// Count, means and scatters must be within the derived bounds of <see cref="MomentsErrorBound"/> (their factors from
/// <c>Tolerances.MomentsScatterRelative</c> and <c>MomentsMeanRelative</c>) of the two-pass double reference.
/// </summary>
public sealed record MomentsCase(int Groups, int Features, DType DType, int Rows, int Shards, bool Rank2, bool RoundTrip,
    bool Diagonal, double Mean, double Scale, int Seed) : IOpCase
{
    public string Op => "moments.update + merge";

    public string Name => ToString();

    public string Standard => "count, means and scatters within MomentsErrorBound of MomentsReference";

    /// <summary>Every value read once; the states are small beside the rows.</summary>
    public long MovedBytes => (long)Rows * Groups * Features * DType.SizeOf();

    /// <summary>The multiply-adds of one triangle of X^T X per group (x2), or of the diagonal alone.</summary>
    public long Flops => (long)Rows * Groups * (Diagonal ? 2L * Features : (long)Features * (Features + 1));

    public MomentsData Data() => MomentsData.Random(Rows, Groups, Features, DType, Seed, Mean, Scale);

    public string? Check(Device device)
    {
        MomentsData data = Data();
        return MomentsCheck.MatchesReference(UpdateAndMerge(data, device, new Random(Seed)), data, null, device.Kind);
    }

    /// <summary>Random batch sizes, shuffled, dealt to the shards, optionally round-tripped through bytes, merged in a random tree.</summary>
    public Moments UpdateAndMerge(MomentsData data, Device device, Random random)
    {
        var batches = new List<(int First, int Count)>();
        for (int first = 0; first < data.Rows;)
        {
            if (random.Next(10) == 0) batches.Add((first, 0));
            int size = random.Next(4) switch
            {
                0 => 1,
                1 => random.Next(1, 8),
                2 => random.Next(Moments.ScatterBlockRows - 3, Moments.ScatterBlockRows + 4),
                _ => random.Next(1, data.Rows + 1),
            };
            size = Math.Min(size, data.Rows - first);
            batches.Add((first, size));
            first += size;
        }
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batches));
        var shards = Enumerable.Range(0, Shards).Select(_ => new Moments(Features, Groups, device, Diagonal)).ToList();
        foreach ((int first, int count) in batches)
        {
            using Tensor batch = data.Batch(first, count, device, Rank2);
            shards[random.Next(Shards)].Update(batch);
        }
        if (RoundTrip) shards = [.. shards.Select(s => Moments.FromBytes(s.ToBytes(), device))];
        while (shards.Count > 1)
        {
            int into = random.Next(shards.Count), from = random.Next(shards.Count - 1);
            if (from >= into) from++;
            shards[into].Merge(shards[from]);
            shards.RemoveAt(from);
        }
        return shards[0];
    }

    /// <summary>All rows as one batch on the device and a state that takes it: one <see cref="Moments.Update"/> per run.</summary>
    public PreparedCase Prepare(Device device)
    {
        Tensor batch = Data().Batch(0, Rows, device, Rank2);
        var state = new Moments(Features, Groups, device, Diagonal);
        return new PreparedCase(() => state.Update(batch), batch);
    }
}

/// <summary>The comparison every Moments check ends with: count, means and scatters within the derived bounds.</summary>
public static class MomentsCheck
{
    /// <summary>
    /// Null when the state matches the reference over <paramref name="rows"/> of <paramref name="data"/> (all rows when
    /// null) within <see cref="MomentsErrorBound"/>, with a covariance symmetric to the bit; otherwise the first place it does not.
    /// </summary>
    public static string? MatchesReference(Moments state, MomentsData data, IReadOnlyList<int>? rows, DeviceKind backend)
    {
        int n = rows?.Count ?? data.Rows, d = data.Features;
        if (state.Count != n) return $"count {state.Count}, {n} rows were given";
        int ddof = n >= 2 ? 1 : 0;
        for (int g = 0; g < data.Groups; g++)
        {
            double[] x = data.Group(g, rows);
            double[] mean = state.Mean(g), expectedMean = MomentsReference.Mean(x, d), meanBound = MomentsErrorBound.Mean(x, d, backend);
            for (int j = 0; j < d; j++)
                if (!(Math.Abs(mean[j] - expectedMean[j]) <= meanBound[j]))
                    return $"group {g} mean[{j}] = {mean[j]:R}, reference {expectedMean[j]:R}, allowed {meanBound[j]:E2}";
            double[,] expected = MomentsReference.Covariance(x, d, ddof), bound = MomentsErrorBound.Scatter(x, d, backend);
            if (state.DiagonalOnly)
            {
                double[] variance = state.Variance(g, ddof);
                for (int j = 0; j < d; j++)
                    if (!(Math.Abs(variance[j] - expected[j, j]) <= bound[j, j] / (n - ddof)))
                        return $"group {g} var[{j}] = {variance[j]:R}, reference {expected[j, j]:R}, allowed {bound[j, j] / (n - ddof):E2}";
                continue;
            }
            double[,] covariance = state.Covariance(g, ddof);
            for (int j = 0; j < d; j++)
                for (int k = 0; k < d; k++)
                {
                    if (!covariance[j, k].Equals(covariance[k, j])) return $"group {g} C[{j}, {k}] = {covariance[j, k]:R} but C[{k}, {j}] = {covariance[k, j]:R}";
                    if (!(Math.Abs(covariance[j, k] - expected[j, k]) <= bound[j, k] / (n - ddof)))
                        return $"group {g} C[{j}, {k}] = {covariance[j, k]:R}, reference {expected[j, k]:R}, allowed {bound[j, k] / (n - ddof):E2}";
                }
        }
        return null;
    }
}
