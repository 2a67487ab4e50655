namespace NativeTensor.Tests.Ops;

/// <summary>What <see cref="Windows"/> promises apart from any backend: the count, and starts that change under a gather.</summary>
public sealed class WindowsHostTests
{
    [Theory]
    [InlineData(380_000, 30, 1, 379_971)]
    [InlineData(10, 3, 4, 2)]
    [InlineData(10, 10, 7, 1)]
    [InlineData(9, 10, 1, 0)]
    [InlineData(0, 1, 1, 0)]
    [InlineData(3_000_000_000, 30, 2, 1_499_999_986)]
    public void Count_is_the_number_of_whole_windows(long frames, int window, int stride, long expected) =>
        Assert.Equal(expected, Windows.Count(frames, window, stride));

    [Theory]
    [InlineData(-1, 1, 1, "frames")]
    [InlineData(10, 0, 1, "window")]
    [InlineData(10, 3, 0, "stride")]
    public void Count_refuses_bad_arguments(long frames, int window, int stride, string parameter) =>
        Assert.Equal(parameter, Assert.Throws<ArgumentOutOfRangeException>(() => Windows.Count(frames, window, stride)).ParamName);

    /// <summary>
    /// Starts that live in the gather's own output: the first window overwrites them as it is copied. The gather
    /// must use the starts it checked, not what the memory holds later (which here would point past the frames).
    /// </summary>
    [Fact]
    public void Starts_that_alias_the_output_are_read_once_as_checked()
    {
        using Tensor frames = Tensor.FromArray(Enumerable.Repeat(150L, 100).ToArray(), 100);
        using Tensor output = Tensor.Empty(DType.Int64, [3, 10], Device.Cpu);
        Span<long> starts = output.AsSpan<long>()[..3];
        starts[0] = 0; starts[1] = 5; starts[2] = 90;
        Windows.Gather(frames, starts, 10, output);
        Assert.All(output.ToArray<long>(), v => Assert.Equal(150L, v));

        using Tensor startsTensor = Tensor.FromArray(new long[] { 0, 5, 90 });
        using Tensor aliased = Tensor.Empty(DType.Int64, [3, 10], Device.Cpu);
        Windows.Gather(frames, startsTensor, 10, aliased);
        Assert.All(aliased.ToArray<long>(), v => Assert.Equal(150L, v));
    }
}
