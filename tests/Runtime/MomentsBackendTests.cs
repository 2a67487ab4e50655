using System.Runtime.InteropServices;
using NativeTensor.Runtime;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Runtime;

/// <summary>
/// Backend-level checks of <c>kernels/moments.cl</c>, the device half of <see cref="Moments.Update"/>: column sums,
/// centring and the compensated add give the CPU backend's bits (all three are sequences of correctly rounded adds
/// and subtractions in one specified order, so there is no tolerance; NaNs compare as NaNs, since their payloads differ
/// between CPUs and GPUs); the sums and the add also stay within their derived bound of the exact sum (Ogita, Rump and
/// Oishi's Sum2, see <see cref="Tolerances.MomentsScatterRelative"/>), on the CPU too. Every output is poisoned before
/// the call and runs on into a guard that must come back untouched; a bad size is refused before anything is written.
/// </summary>
public abstract class MomentsBackendTests
{
    private const int GuardBytes = 256;

    protected abstract Device Device { get; }

    public static TheoryData<DType> FloatTypes() => new() { DType.Float32, DType.Float16, DType.BFloat16 };

    /// <summary>(batch rows, columns, chunk rows) with one chunk, many, a short last one, single rows and columns.</summary>
    private static readonly (int Rows, int Columns, int ChunkRows)[] SumShapes =
        [(1, 1, 1), (7, 3, 2), (300, 17, 128), (257, 287, 64), (1000, 5, 1000), (129, 33, 7), (64, 1, 3)];

    [Theory]
    [MemberData(nameof(FloatTypes))]
    public void Column_sums_match_the_cpu_and_stay_within_the_Sum2_bound(DType dtype)
    {
        Backend backend = Device.Backend;
        foreach ((int rows, int columns, int chunkRows) in SumShapes)
        {
            var random = new Random(rows * 31 + columns);
            byte[] batch = Narrow(ExactlySummable(random, rows * columns), dtype);
            float[] x = Widen(batch, dtype);
            string label = $"{dtype} [{rows}, {columns}] in chunks of {chunkRows}";

            (float[] sums, _) = ColumnSums(backend, batch, dtype, rows, columns, null, rows, chunkRows, flags: false, label);
            AssertSameFloats(sums, ColumnSums(Device.Cpu.Backend, batch, dtype, rows, columns, null, rows, chunkRows, false, label).Sums, label);
            AssertWithinSum2Bound(sums, x, columns, Enumerable.Range(0, rows).Select(r => (long)r).ToArray(), chunkRows, label);

            // An index list: a random selection of rows, some repeated, in any order.
            long[] index = [.. Enumerable.Range(0, rows + rows / 2).Select(_ => (long)random.Next(rows))];
            string indexed = $"{label}, {index.Length} listed rows";
            (float[] listed, _) = ColumnSums(backend, batch, dtype, rows, columns, index, index.Length, chunkRows, flags: false, indexed);
            AssertSameFloats(listed, ColumnSums(Device.Cpu.Backend, batch, dtype, rows, columns, index, index.Length, chunkRows, false, indexed).Sums, indexed);
            AssertWithinSum2Bound(listed, x, columns, index, chunkRows, indexed);
        }
    }

    [Theory]
    [MemberData(nameof(FloatTypes))]
    public void Column_sums_flag_exactly_the_rows_with_NaN_or_Inf(DType dtype)
    {
        Backend backend = Device.Backend;
        const int rows = 200, columns = 13, chunkRows = 64;
        var random = new Random(5);
        float[] values = ExactlySummable(random, rows * columns);
        int[] bad = [0, 63, 64, 150, 199];
        float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity];
        for (int b = 0; b < bad.Length; b++) values[bad[b] * columns + b % columns] = specials[b % specials.Length];
        byte[] batch = Narrow(values, dtype);
        string label = $"{dtype} [{rows}, {columns}] with {bad.Length} non-finite rows";

        (float[] sums, uint[]? flags) = ColumnSums(backend, batch, dtype, rows, columns, null, rows, chunkRows, flags: true, label);
        (float[] cpuSums, uint[]? cpuFlags) = ColumnSums(Device.Cpu.Backend, batch, dtype, rows, columns, null, rows, chunkRows, true, label);
        Assert.Equal(Enumerable.Range(0, rows).Select(r => bad.Contains(r) ? 1u : 0u), flags!);
        Assert.Equal(cpuFlags, flags);
        AssertSameFloats(sums, cpuSums, label);
        // The poisoned columns of the chunks that hold a bad row are NaN; every other pair is finite.
        for (int c = 0; c * chunkRows < rows; c++)
            for (int e = 0; e < columns; e++)
            {
                bool poisoned = bad.Select((row, b) => (row, b)).Any(p => p.row / chunkRows == c && p.b % columns == e);
                Assert.Equal(poisoned, float.IsNaN(sums[2 * (c * columns + e)] + sums[2 * (c * columns + e) + 1]));
            }
    }

    [Fact]
    public void A_listed_row_outside_the_batch_is_not_read_and_counts_as_NaN()
    {
        Backend backend = Device.Backend;
        const int rows = 10, columns = 4;
        byte[] batch = Narrow(ExactlySummable(new Random(1), rows * columns), DType.Float32);
        long[] index = [0, 1, 2, 3, rows, 5, 6, 7, -1];
        (float[] sums, _) = ColumnSums(backend, batch, DType.Float32, rows, columns, index, index.Length, 4, flags: false, "bad rows");
        AssertSameFloats(sums, ColumnSums(Device.Cpu.Backend, batch, DType.Float32, rows, columns, index, index.Length, 4, false, "bad rows").Sums, "bad rows");
        for (int e = 0; e < columns; e++)
        {
            Assert.False(float.IsNaN(sums[2 * e]), $"chunk 0 column {e}");
            Assert.True(float.IsNaN(sums[2 * (columns + e)]), $"chunk 1 column {e} (row {rows} listed)");
            Assert.True(float.IsNaN(sums[2 * (2 * columns + e)]), $"chunk 2 column {e} (row -1 listed)");
        }

        float[] centred = Centre(backend, batch, DType.Float32, rows, columns, index, 2, 4, 1, 3, new float[columns], "bad rows");
        AssertSameFloats(centred, Centre(Device.Cpu.Backend, batch, DType.Float32, rows, columns, index, 2, 4, 1, 3, new float[columns], "bad rows"), "bad rows");
        Assert.All(centred.AsSpan(2 * 3, 3).ToArray(), v => Assert.True(float.IsNaN(v)));
        Assert.DoesNotContain(centred.AsSpan(0, 2 * 3).ToArray(), float.IsNaN);
    }

    /// <summary>(batch rows, row elements, first, taken, column, width): whole rows, a group's slice, one row, a full block.</summary>
    private static readonly (int Rows, int RowElements, int First, int Taken, int Column, int Width)[] CentreShapes =
        [(1, 1, 0, 1, 0, 1), (300, 51, 7, 128, 17, 17), (300, 51, 290, 10, 34, 17), (129, 287, 1, 128, 0, 287), (5, 40, 4, 1, 39, 1)];

    [Theory]
    [MemberData(nameof(FloatTypes))]
    public void Centring_matches_the_cpu_and_the_formula_bit_for_bit(DType dtype)
    {
        Backend backend = Device.Backend;
        foreach ((int rows, int rowElements, int first, int taken, int column, int width) in CentreShapes)
        {
            var random = new Random(rows + rowElements + first);
            // Random values over many binades, with every special value (NaN payloads, ±0, subnormals, ±Inf, max) among them.
            float[] values = [.. Enumerable.Range(0, rows * rowElements).Select(_ => MathF.ScaleB(random.NextSingle() - 0.5f, random.Next(-30, 30)))];
            byte[] batch = Narrow(values, dtype);
            byte[] specials = SpecialValues.Fill(dtype, Math.Min(rows * rowElements, 3 * SpecialValues.Bits(dtype).Length));
            specials.CopyTo(batch, (long)Math.Max(0, rows * rowElements - specials.Length / dtype.SizeOf()) * dtype.SizeOf());
            float[] x = Widen(batch, dtype);
            float[] pivot = [.. Enumerable.Range(0, rowElements).Select(_ => MathF.ScaleB(random.NextSingle() - 0.5f, random.Next(-30, 30)))];

            foreach (bool indexed in (bool[])[false, true])
            {
                long[]? index = indexed ? [.. Enumerable.Range(0, first + taken).Select(_ => (long)random.Next(rows))] : null;
                string label = $"{dtype} [{rows}, {rowElements}] rows {first}+{taken} columns {column}+{width}{(indexed ? " listed" : "")}";
                float[] actual = Centre(backend, batch, dtype, rows, rowElements, index, first, taken, column, width, pivot, label);
                var expected = new float[taken * width];
                for (int r = 0; r < taken; r++)
                {
                    long row = index is null ? first + r : index[first + r];
                    for (int j = 0; j < width; j++) expected[r * width + j] = x[row * rowElements + column + j] - pivot[column + j];
                }
                AssertSameFloats(actual, expected, label);
                AssertSameFloats(actual, Centre(Device.Cpu.Backend, batch, dtype, rows, rowElements, index, first, taken, column, width, pivot, label), label);
            }
        }
    }

    [Fact]
    public void Compensated_adds_match_the_cpu_and_stay_within_the_Sum2_bound()
    {
        Backend backend = Device.Backend;
        const int terms = 40;
        foreach (int count in (int[])[0, 1, 1000, 65537])
        {
            var random = new Random(count);
            // Large terms of both signs beside small ones, so plain Float32 accumulation would lose digits.
            float[][] addends = [.. Enumerable.Range(0, terms).Select(t => ExactlySummable(random, count, t % 3 == 0 ? 20 : 4))];
            string label = $"{count} elements, {terms} terms";
            (float[] hi, float[] lo) = Accumulate(backend, addends, count, label);
            (float[] cpuHi, float[] cpuLo) = Accumulate(Device.Cpu.Backend, addends, count, label);
            AssertSameFloats(hi, cpuHi, label + ": hi");
            AssertSameFloats(lo, cpuLo, label + ": lo");
            double gamma = Tolerances.Gamma(terms - 1, Tolerances.SingleUnitRoundoff);
            for (int i = 0; i < count; i++)
            {
                double exact = 0, magnitude = 0;   // exact: every term is a multiple of 2^-23 below 2^21, so 40 of them sum exactly in double
                foreach (float[] a in addends)
                {
                    exact += a[i];
                    magnitude += Math.Abs(a[i]);
                }
                double error = Math.Abs((double)hi[i] + lo[i] - exact);
                Assert.True(error <= gamma * gamma * magnitude, $"{label}: [{i}] hi + lo = {(double)hi[i] + lo[i]:R}, exact {exact:R}, allowed {gamma * gamma * magnitude:E2}");
            }
        }
    }

    [Fact]
    public void Short_buffers_and_too_many_chunks_are_refused_before_anything_is_written()
    {
        Backend backend = Device.Backend;
        const int rows = 20, columns = 3;
        byte[] values = Narrow(ExactlySummable(new Random(2), rows * columns), DType.Float32);
        using DeviceBuffer batch = Upload(backend, values);
        using DeviceBuffer flags = Upload(backend, Poison(rows * sizeof(uint)));
        using DeviceBuffer shortSums = Upload(backend, Poison(2 * columns * sizeof(float) - 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.MomentColumnSums(batch, DType.Float32, rows, columns, null, rows, rows, shortSums, flags));
        Assert.Equal(Poison(rows * sizeof(uint)), Download(backend, flags));
        using DeviceBuffer sums = Upload(backend, Poison(2 * columns * sizeof(float)));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.MomentColumnSums(batch, DType.Float32, rows + 1, columns, null, rows + 1, rows + 1, sums, flags));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.MomentColumnSums(batch, DType.Float32, rows, columns, null, rows, 0, sums, null));
        using DeviceBuffer manyRows = backend.Allocate((Backend.MaxMomentGridRows + 1L) * sizeof(float));
        using DeviceBuffer manySums = backend.Allocate((Backend.MaxMomentGridRows + 1L) * 2 * sizeof(float));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            backend.MomentColumnSums(manyRows, DType.Float32, Backend.MaxMomentGridRows + 1L, 1, null, Backend.MaxMomentGridRows + 1L, 1, manySums, null));
        Assert.Equal(Poison(2 * columns * sizeof(float)), Download(backend, sums));

        using DeviceBuffer pivot = Upload(backend, new byte[columns * sizeof(float)]);
        using DeviceBuffer output = Upload(backend, Poison(2 * columns * sizeof(float)));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.MomentCentre(batch, DType.Float32, rows, columns, null, 0, 3, 0, columns, pivot, output));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.MomentCentre(batch, DType.Float32, rows, columns, null, rows - 1, 2, 0, 1, pivot, output));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.MomentCentre(batch, DType.Float32, rows, columns, null, 0, 1, 1, columns, pivot, output));
        Assert.Equal(Poison(2 * columns * sizeof(float)), Download(backend, output));

        using DeviceBuffer hi = Upload(backend, Poison(8 * sizeof(float)));
        using DeviceBuffer lo = Upload(backend, Poison(8 * sizeof(float)));
        using DeviceBuffer addend = Upload(backend, new byte[7 * sizeof(float)]);
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.CompensatedAdd(hi, lo, addend, 8, start: true));
        Assert.Equal(Poison(8 * sizeof(float)), Download(backend, hi));
        Assert.Equal(Poison(8 * sizeof(float)), Download(backend, lo));
    }

    /// <summary>Runs the column sums with a poisoned, guarded output (and poisoned flags), checks the guards, returns the pairs and the flags.</summary>
    private static (float[] Sums, uint[]? Flags) ColumnSums(Backend backend, byte[] batch, DType dtype, long rows, long columns, long[]? index,
        long count, long chunkRows, bool flags, string label)
    {
        long chunks = (count + chunkRows - 1) / chunkRows;
        int sumBytes = checked((int)(chunks * columns * 2 * sizeof(float))), flagBytes = checked((int)rows * sizeof(uint));
        using DeviceBuffer input = Upload(backend, batch);
        using DeviceBuffer? list = index is null ? null : Upload(backend, MemoryMarshal.AsBytes(index.AsSpan()).ToArray());
        using DeviceBuffer sums = Upload(backend, Poison(sumBytes + GuardBytes));
        using DeviceBuffer? rowFlags = flags ? Upload(backend, Poison(flagBytes + GuardBytes)) : null;
        backend.MomentColumnSums(input, dtype, rows, columns, list, count, chunkRows, sums, rowFlags);
        byte[] pairs = Download(backend, sums);
        Assert.True(pairs.AsSpan(sumBytes).SequenceEqual(Poison(GuardBytes)), $"{label}: the sums' guard was written");
        uint[]? flagged = null;
        if (rowFlags is not null)
        {
            byte[] back = Download(backend, rowFlags);
            Assert.True(back.AsSpan(flagBytes).SequenceEqual(Poison(GuardBytes)), $"{label}: the flags' guard was written");
            flagged = MemoryMarshal.Cast<byte, uint>(back.AsSpan(0, flagBytes)).ToArray();
        }
        return (MemoryMarshal.Cast<byte, float>(pairs.AsSpan(0, sumBytes)).ToArray(), flagged);
    }

    /// <summary>Centres with a poisoned, guarded output, checks the guard, returns the [taken, width] block.</summary>
    private static float[] Centre(Backend backend, byte[] batch, DType dtype, long rows, int rowElements, long[]? index, long first, int taken,
        int column, int width, float[] pivot, string label)
    {
        int bytes = taken * width * sizeof(float);
        using DeviceBuffer input = Upload(backend, batch);
        using DeviceBuffer? list = index is null ? null : Upload(backend, MemoryMarshal.AsBytes(index.AsSpan()).ToArray());
        using DeviceBuffer centre = Upload(backend, MemoryMarshal.AsBytes(pivot.AsSpan()).ToArray());
        using DeviceBuffer output = Upload(backend, Poison(bytes + GuardBytes));
        backend.MomentCentre(input, dtype, rows, rowElements, list, first, taken, column, width, centre, output);
        byte[] back = Download(backend, output);
        Assert.True(back.AsSpan(bytes).SequenceEqual(Poison(GuardBytes)), $"{label}: the output's guard was written");
        return MemoryMarshal.Cast<byte, float>(back.AsSpan(0, bytes)).ToArray();
    }

    /// <summary>Starts poisoned (hi, lo) pairs with the first addend, adds the rest, checks the guards, returns the pairs.</summary>
    private static (float[] Hi, float[] Lo) Accumulate(Backend backend, float[][] addends, int count, string label)
    {
        int bytes = count * sizeof(float);
        using DeviceBuffer hi = Upload(backend, Poison(bytes + GuardBytes));
        using DeviceBuffer lo = Upload(backend, Poison(bytes + GuardBytes));
        using DeviceBuffer term = backend.Allocate(bytes + GuardBytes);
        for (int t = 0; t < addends.Length; t++)
        {
            backend.Write(term, 0, [.. MemoryMarshal.AsBytes(addends[t].AsSpan()), .. Poison(GuardBytes)]);
            backend.CompensatedAdd(hi, lo, term, count, start: t == 0);
        }
        byte[] high = Download(backend, hi), low = Download(backend, lo);
        Assert.True(high.AsSpan(bytes).SequenceEqual(Poison(GuardBytes)), $"{label}: hi's guard was written");
        Assert.True(low.AsSpan(bytes).SequenceEqual(Poison(GuardBytes)), $"{label}: lo's guard was written");
        return (MemoryMarshal.Cast<byte, float>(high.AsSpan(0, bytes)).ToArray(), MemoryMarshal.Cast<byte, float>(low.AsSpan(0, bytes)).ToArray());
    }

    /// <summary>
    /// Each chunk's pair against the exact sum of its rows (the values are multiples of 2^-23 below 2^13, so a double sum of
    /// them is exact): <c>|hi + lo - Σ x| &lt;= γ_(m-1)² Σ |x|</c> for a chunk of m rows (Ogita, Rump and Oishi 2005, Prop. 4.5).
    /// </summary>
    private static void AssertWithinSum2Bound(float[] sums, float[] x, long columns, long[] rows, long chunkRows, string label)
    {
        for (long c = 0; c * chunkRows < rows.Length; c++)
        {
            long begin = c * chunkRows, end = Math.Min(rows.Length, begin + chunkRows);
            double gamma = Tolerances.Gamma(end - begin - 1, Tolerances.SingleUnitRoundoff);
            for (long e = 0; e < columns; e++)
            {
                double exact = 0, magnitude = 0;
                for (long r = begin; r < end; r++)
                {
                    exact += x[rows[r] * columns + e];
                    magnitude += Math.Abs(x[rows[r] * columns + e]);
                }
                double pair = (double)sums[2 * (c * columns + e)] + sums[2 * (c * columns + e) + 1];
                Assert.True(Math.Abs(pair - exact) <= gamma * gamma * magnitude,
                    $"{label}: chunk {c} column {e}: hi + lo = {pair:R}, exact {exact:R}, allowed {gamma * gamma * magnitude:E2}");
            }
        }
    }

    /// <summary>Signed values 2^k [1, 2) with k in [0, binades): multiples of 2^-23, so sums of a few thousand are exact in double.</summary>
    private static float[] ExactlySummable(Random random, int count, int binades = 13) =>
        [.. Enumerable.Range(0, count).Select(_ => (random.Next(2) == 0 ? -1 : 1) * MathF.ScaleB(1 + random.NextSingle(), random.Next(binades)))];

    private static byte[] Narrow(float[] values, DType dtype) => dtype switch
    {
        DType.Float32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
        DType.Float16 => MemoryMarshal.AsBytes(values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray().AsSpan()).ToArray(),
        _ => MemoryMarshal.AsBytes(values.Select(v => BFloat16.RoundBits(BitConverter.SingleToUInt32Bits(v))).ToArray().AsSpan()).ToArray(),
    };

    /// <summary>The batch's values as the kernels see them: 16-bit values widened exactly (NaN payloads aside).</summary>
    private static float[] Widen(byte[] batch, DType dtype) => dtype switch
    {
        DType.Float32 => MemoryMarshal.Cast<byte, float>(batch.AsSpan()).ToArray(),
        DType.Float16 => [.. MemoryMarshal.Cast<byte, ushort>(batch.AsSpan()).ToArray().Select(h => (float)BitConverter.UInt16BitsToHalf(h))],
        _ => [.. MemoryMarshal.Cast<byte, ushort>(batch.AsSpan()).ToArray().Select(b => BitConverter.UInt32BitsToSingle((uint)b << 16))],
    };

    /// <summary>Equal bits, or both NaN (payloads differ between CPUs and GPUs).</summary>
    private static void AssertSameFloats(float[] actual, float[] expected, string label)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < actual.Length; i++)
            if (!(float.IsNaN(actual[i]) && float.IsNaN(expected[i])) && BitConverter.SingleToUInt32Bits(actual[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
                Assert.Fail($"{label}: [{i}] = {actual[i]:R} (0x{BitConverter.SingleToUInt32Bits(actual[i]):X8}), expected {expected[i]:R} (0x{BitConverter.SingleToUInt32Bits(expected[i]):X8})");
    }

    private static DeviceBuffer Upload(Backend backend, byte[] bytes)
    {
        DeviceBuffer buffer = backend.Allocate(bytes.Length);
        backend.Write(buffer, 0, bytes);
        return buffer;
    }

    private static byte[] Download(Backend backend, DeviceBuffer buffer)
    {
        var bytes = new byte[buffer.ByteCount];
        backend.Read(buffer, 0, bytes);
        return bytes;
    }

    private static byte[] Poison(int bytes)
    {
        var poison = new byte[bytes];
        Array.Fill(poison, (byte)0xFF);
        return poison;
    }
}

/// <summary><see cref="MomentsBackendTests"/> on the CPU backend: its own bounds, guards and refusals (its bits are the reference).</summary>
public sealed class CpuMomentsBackendTests : MomentsBackendTests
{
    protected override Device Device => NativeTensor.Device.Cpu;
}

/// <summary><see cref="MomentsBackendTests"/> on the first OpenCL device (PoCL in CI).</summary>
public sealed class OpenClMomentsBackendTests : MomentsBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.OpenCl);
}

/// <summary><see cref="MomentsBackendTests"/> on the first CUDA device; skipped (visibly) where there is none.</summary>
public sealed class CudaMomentsBackendTests : MomentsBackendTests
{
    protected override Device Device => Backends.Require(DeviceKind.Cuda);
}
