using System.Buffers.Binary;
using System.Text;
using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// The host side of <see cref="Moments"/>, the same on every device: construction and accessor rules, merging (its algebra
/// and its refusals), and the serialised form: exact round trips, a documented layout, and every truncation, extension or
/// corruption refused rather than read as a state.
/// </summary>
public sealed class MomentsHostTests
{
    /// <summary>A small state with data in it: two groups, three features, 40 rows.</summary>
    private static Moments Filled(int seed = 4, bool diagonal = false, int rows = 40, bool skip = false)
    {
        var state = new Moments(3, 2, Device.Cpu, diagonal, skip);
        using Tensor batch = MomentsData.Random(rows, 2, 3, DType.Float32, seed, mean: 2, scale: 3).All(Device.Cpu);
        state.Update(batch);
        return state;
    }

    [Theory]
    [InlineData(0, 1, "features")]
    [InlineData(-3, 1, "features")]
    [InlineData(4, 0, "groups")]
    [InlineData(100_000, 1, "features")]
    public void Bad_shapes_are_refused_at_construction(int features, int groups, string argument)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Moments(features, groups, Device.Cpu));
        Assert.Equal(argument, e.ParamName);
        Assert.Contains($"{(argument == "groups" ? groups : features)}", e.Message);
    }

    [Fact]
    public void A_huge_diagonal_only_state_is_fine_where_the_full_one_is_refused()
    {
        Assert.Equal(100_000, new Moments(100_000, 1, Device.Cpu, diagonalOnly: true).Features);
    }

    [Fact]
    public void Accessors_refuse_out_of_range_arguments_naming_them()
    {
        Moments state = Filled();
        Assert.Equal("group", Assert.Throws<ArgumentOutOfRangeException>(() => state.Mean(2)).ParamName);
        Assert.Equal("group", Assert.Throws<ArgumentOutOfRangeException>(() => state.Covariance(-1)).ParamName);
        Assert.Equal("group", Assert.Throws<ArgumentOutOfRangeException>(() => state.Correlation(5)).ParamName);
        var ddof = Assert.Throws<ArgumentOutOfRangeException>(() => state.Covariance(0, ddof: 40));
        Assert.Equal("ddof", ddof.ParamName);
        Assert.Contains("count 40", ddof.Message);
        Assert.Equal("ddof", Assert.Throws<ArgumentOutOfRangeException>(() => state.Variance(0, ddof: -1)).ParamName);
        Assert.Equal(3, state.Covariance(0, ddof: 39).GetLength(0));   // count - ddof = 1 is allowed
    }

    [Fact]
    public void An_empty_state_has_no_mean_and_no_covariance()
    {
        var state = new Moments(3, device: Device.Cpu);
        Assert.Equal(0, state.Count);
        Assert.Throws<InvalidOperationException>(() => state.Mean());
        Assert.Throws<InvalidOperationException>(() => state.Correlation());
        Assert.Equal("ddof", Assert.Throws<ArgumentOutOfRangeException>(() => state.Covariance(0, ddof: 0)).ParamName);
    }

    [Fact]
    public void A_diagonal_only_state_refuses_the_full_matrices_and_gives_variances()
    {
        Moments diagonal = Filled(diagonal: true), full = Filled();
        Assert.Throws<InvalidOperationException>(() => diagonal.Covariance());
        Assert.Throws<InvalidOperationException>(() => diagonal.Correlation());
        double[] variance = diagonal.Variance(1);
        double[,] covariance = full.Covariance(1);
        // The diagonal-only pass is the reference's own double arithmetic; the full one is within its Float32 bound of it.
        for (int j = 0; j < 3; j++)
            Assert.True(Math.Abs(covariance[j, j] - variance[j]) <= Tolerances.MomentsScatterRelative(DeviceKind.Cpu) * variance[j], $"var[{j}]");
    }

    [Fact]
    public void Merging_refuses_states_of_another_shape_or_mode_and_changes_nothing()
    {
        Moments state = Filled();
        byte[] before = state.ToBytes();
        Assert.Equal("other", Assert.Throws<ArgumentNullException>(() => state.Merge(null!)).ParamName);
        foreach (Moments other in new[] { new Moments(4, 2, Device.Cpu), new Moments(3, 1, Device.Cpu), Filled(diagonal: true) })
        {
            var e = Assert.Throws<ArgumentException>(() => state.Merge(other));
            Assert.Equal("other", e.ParamName);
            Assert.Contains("2 group(s) x 3 features, full", e.Message);
        }
        Assert.Equal(before, state.ToBytes());
    }

    [Fact]
    public void Merging_with_an_empty_state_is_exact_both_ways()
    {
        Moments state = Filled();
        byte[] bytes = state.ToBytes();
        state.Merge(new Moments(3, 2, Device.Cpu));
        Assert.Equal(bytes, state.ToBytes());
        var empty = new Moments(3, 2, Device.Cpu);
        empty.Merge(state);
        Assert.Equal(bytes, empty.ToBytes());
    }

    [Fact]
    public void Merging_a_state_with_itself_counts_its_rows_twice()
    {
        Moments state = Filled();
        double[] mean = state.Mean(1);
        double[,] scatter = state.Covariance(1, ddof: 0);
        state.Merge(state);
        Assert.Equal(80, state.Count);
        Assert.Equal(mean, state.Mean(1));
        Assert.Equal(scatter, state.Covariance(1, ddof: 0));   // δ = 0, so 2 M2 / 2n: the same bits
    }

    [Fact]
    public void Serialising_round_trips_to_the_same_bytes_and_values()
    {
        foreach (Moments state in new[] { Filled(), Filled(diagonal: true), Filled(skip: true), new Moments(5, 3, Device.Cpu) })
        {
            byte[] bytes = state.ToBytes();
            Moments back = Moments.FromBytes(bytes, Device.Cpu);
            Assert.Equal(bytes, back.ToBytes());
            Assert.Equal((state.Count, state.NonFiniteRows, state.Groups, state.Features, state.DiagonalOnly, state.SkipsNonFiniteRows),
                (back.Count, back.NonFiniteRows, back.Groups, back.Features, back.DiagonalOnly, back.SkipsNonFiniteRows));
            if (state.Count > 0) Assert.Equal(state.Mean(state.Groups - 1), back.Mean(state.Groups - 1));
        }
    }

    [Fact]
    public void Shards_merged_after_a_round_trip_give_the_same_bits_as_without()
    {
        Moments a = Filled(1), b = Filled(2), c = Filled(3);
        Moments direct = Filled(1);
        direct.Merge(b);
        direct.Merge(c);
        Moments shipped = Moments.FromBytes(a.ToBytes());
        shipped.Merge(Moments.FromBytes(b.ToBytes()));
        shipped.Merge(Moments.FromBytes(c.ToBytes()));
        Assert.Equal(direct.ToBytes(), shipped.ToBytes());
    }

    /// <summary>
    /// A batch that fits one Syrk block is merged into the state as its scatters come out (no batch-sized scatter in
    /// double); the result must be the bits that summarising it alone and merging that state give. Features 40 take the
    /// lanes and the scalar tails of every row; the second batch's mean is far from the first's, so the merge term counts.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_small_batch_folded_into_the_state_gives_the_bits_of_a_separate_summary_merged(bool skip)
    {
        const int features = 40, groups = 3;
        using Tensor first = MomentsData.Random(300, groups, features, DType.Float32, 11, mean: 2, scale: 3).All(Device.Cpu);
        using Tensor small = MomentsData.Random(64, groups, features, DType.Float32, 12, mean: -5, scale: 0.5).All(Device.Cpu);
        if (skip) small.AsSpan<float>()[features + 7] = float.NaN;   // row 0 left out: 63 rows folded
        var folded = new Moments(features, groups, Device.Cpu, skipNonFiniteRows: skip);
        folded.Update(first);
        folded.Update(small);
        var merged = new Moments(features, groups, Device.Cpu, skipNonFiniteRows: skip);
        merged.Update(first);
        var alone = new Moments(features, groups, Device.Cpu, skipNonFiniteRows: skip);
        alone.Update(small);
        merged.Merge(alone);
        Assert.Equal(skip ? 1 : 0, folded.NonFiniteRows);
        Assert.Equal(merged.ToBytes(), folded.ToBytes());
    }

    /// <summary>Counts that would pass long.MaxValue are refused by Merge before anything changes.</summary>
    [Fact]
    public void A_merge_whose_count_would_overflow_is_refused_and_changes_nothing()
    {
        byte[] bytes = Filled(skip: true).ToBytes();
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16), long.MaxValue - 10);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), BitwiseCrc32(bytes[..^4]));
        Moments huge = Moments.FromBytes(bytes);
        byte[] before = huge.ToBytes();
        Assert.Throws<OverflowException>(() => huge.Merge(huge));
        Assert.Equal(before, huge.ToBytes());
    }

    /// <summary>The documented layout, read back field by field, with the checksum computed independently (bitwise CRC-32).</summary>
    [Fact]
    public void The_serialised_form_has_the_documented_layout()
    {
        Assert.Equal(0xCBF43926u, BitwiseCrc32(Encoding.ASCII.GetBytes("123456789")));   // the CRC-32 check value
        Moments state = Filled(skip: true);
        byte[] bytes = state.ToBytes();
        Assert.Equal(32 + 2 * (3 + 6) * 8 + 4, bytes.Length);
        Assert.Equal("NTMO"u8.ToArray(), bytes[..4]);
        Assert.Equal(Moments.FormatVersion, bytes[4]);
        Assert.Equal(2, bytes[5]);
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12)));
        Assert.Equal(40, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16)));
        Assert.Equal(state.Mean(0)[2], BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(32 + 16)));
        double[,] m2 = state.Covariance(1, ddof: 0);
        // Group 1 starts after group 0's 3 means + 6 triangle values; its M2[1, 2] is the 5th triangle value.
        Assert.Equal(m2[1, 2], BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(32 + 9 * 8 + 3 * 8 + 4 * 8)) / 40);
        Assert.Equal(BitwiseCrc32(bytes[..^4]), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)));
    }

    [Fact]
    public void Every_truncation_and_an_extension_are_refused()
    {
        byte[] bytes = Filled().ToBytes();
        for (int length = 0; length < bytes.Length; length++)
        {
            var e = Assert.Throws<ArgumentException>(() => Moments.FromBytes(bytes.AsSpan(0, length)));
            Assert.Equal("data", e.ParamName);
        }
        Assert.Contains("extended", Assert.Throws<ArgumentException>(() => Moments.FromBytes([.. bytes, 0])).Message);
        Assert.Contains("truncated", Assert.Throws<ArgumentException>(() => Moments.FromBytes(bytes.AsSpan(0, bytes.Length - 8))).Message);
    }

    /// <summary>Every byte changed to every other value: never a state (CRC-32 detects every error within 32 consecutive bits).</summary>
    [Fact]
    public void Every_single_byte_corruption_is_refused()
    {
        byte[] bytes = Filled().ToBytes();
        for (int at = 0; at < bytes.Length; at++)
            for (int flip = 1; flip < 256; flip++)
            {
                byte[] corrupted = (byte[])bytes.Clone();
                corrupted[at] ^= (byte)flip;
                Assert.Equal("data", Assert.Throws<ArgumentException>(() => Moments.FromBytes(corrupted)).ParamName);
            }
    }

    [Fact]
    public void Random_multi_byte_corruption_is_refused()
    {
        byte[] bytes = Filled(diagonal: true).ToBytes();
        var random = new Random(9);
        for (int trial = 0; trial < 5000; trial++)
        {
            byte[] corrupted = (byte[])bytes.Clone();
            int changes = random.Next(2, 6);
            for (int c = 0; c < changes; c++) corrupted[random.Next(corrupted.Length)] ^= (byte)random.Next(1, 256);
            if (corrupted.AsSpan().SequenceEqual(bytes)) continue;
            Assert.Throws<ArgumentException>(() => Moments.FromBytes(corrupted));
        }
    }

    /// <summary>Well-formed, correctly checksummed data that no state can hold: each refused with its own message.</summary>
    [Theory]
    [InlineData("version", "format version 2")]
    [InlineData("magic", "not a serialised Moments state")]
    [InlineData("flags", "flag bits")]
    [InlineData("negative count", "cannot be negative")]
    [InlineData("empty with values", "an empty state is all zeros")]
    [InlineData("negative variance", "cannot be negative")]
    public void Well_checksummed_nonsense_is_refused(string what, string message)
    {
        byte[] bytes = Filled().ToBytes();
        switch (what)
        {
            case "version": bytes[4] = 2; break;
            case "magic": bytes[0] = (byte)'X'; break;
            case "flags": bytes[5] = 0x80; break;
            case "negative count": BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16), -1); break;
            case "empty with values": BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16), 0); break;
            case "negative variance": BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(32 + 3 * 8), -1.0); break;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), BitwiseCrc32(bytes[..^4]));
        var e = Assert.Throws<ArgumentException>(() => Moments.FromBytes(bytes));
        Assert.Equal("data", e.ParamName);
        Assert.Contains(message, e.Message);
    }

    /// <summary>CRC-32 one bit at a time, straight from the polynomial: shares nothing with the library's table.</summary>
    private static uint BitwiseCrc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }
}
