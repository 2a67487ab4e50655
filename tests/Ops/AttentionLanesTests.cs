using System.Runtime.Intrinsics;
using NativeTensor.Cpu;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// The two lane operations the decode path is built on, at every width the machine runs: <c>SumEach</c> (Count vectors
/// summed across their lanes at once, by a tree of shuffles whose order is easy to get wrong) and the BFloat16 pair
/// widening. Small integers keep every sum exact, so any lane out of place shows as a wrong value, not a rounding.
/// </summary>
public sealed unsafe class AttentionLanesTests
{
    [Fact]
    public void SumEach_puts_the_sum_of_vector_c_in_lane_c_at_every_width()
    {
        SumEach<Floats1, float>();
        RequireAccelerated(Vector128.IsHardwareAccelerated, 128);
        SumEach<Floats128, Vector128<float>>();
        RequireAccelerated(Vector256.IsHardwareAccelerated, 256);
        SumEach<Floats256, Vector256<float>>();
        RequireAccelerated(Vector512.IsHardwareAccelerated, 512);
        SumEach<Floats512, Vector512<float>>();
    }

    [Fact]
    public void BFloat16_pairs_widen_the_first_element_to_even_and_the_second_to_odd()
    {
        Pairs<Floats1, float>();
        RequireAccelerated(Vector128.IsHardwareAccelerated, 128);
        Pairs<Floats128, Vector128<float>>();
        RequireAccelerated(Vector256.IsHardwareAccelerated, 256);
        Pairs<Floats256, Vector256<float>>();
        RequireAccelerated(Vector512.IsHardwareAccelerated, 512);
        Pairs<Floats512, Vector512<float>>();
    }

    /// <summary>The widths below this one have passed; this one and wider are the machine's to run or to say it cannot.</summary>
    private static void RequireAccelerated(bool accelerated, int bits) =>
        Assert.SkipUnless(accelerated, $"Vector{bits} is not hardware accelerated here: the narrower widths passed");

    private static void SumEach<TLanes, TVector>() where TLanes : IFloatLanes<TVector> where TVector : struct
    {
        int w = TLanes.Count;
        var random = new Random(w);
        float* partials = stackalloc float[w * w], sums = stackalloc float[w];
        for (int trial = 0; trial < 20; trial++)
        {
            for (int i = 0; i < w * w; i++) partials[i] = random.Next(-1000, 1000);
            TLanes.Store(TLanes.SumEach(partials), sums);
            for (int c = 0; c < w; c++)
            {
                float expected = 0;
                for (int lane = 0; lane < w; lane++) expected += partials[c * w + lane];
                Assert.True(expected == sums[c], $"width {w}: lane {c} holds {sums[c]}, the sum of vector {c} is {expected}");
            }
        }
    }

    private static void Pairs<TLanes, TVector>() where TLanes : IFloatLanes<TVector> where TVector : struct
    {
        int w = TLanes.Count;
        ushort[] bits = [0x3F80, 0xBF80, 0x0001, 0x8000, 0x7F80, 0xFF80, 0x7FC1, 0x4049, 0x0080, 0xC2F7, 0x3EAB, 0x7F7F, 0x1234, 0x8F00, 0x3C00, 0xFFFF];
        ushort* source = stackalloc ushort[2 * w];
        float* even = stackalloc float[w], odd = stackalloc float[w];
        for (int i = 0; i < 2 * w; i++) source[i] = bits[(i * 7 + 3) % bits.Length];
        TLanes.LoadBFloat16Pairs((uint*)source, out TVector low, out TVector high);
        TLanes.Store(low, even);
        TLanes.Store(high, odd);
        for (int t = 0; t < w; t++)
        {
            Assert.Equal(BitConverter.SingleToUInt32Bits(BFloat16.FromBits(source[2 * t]).ToSingle()), BitConverter.SingleToUInt32Bits(even[t]));
            Assert.Equal(BitConverter.SingleToUInt32Bits(BFloat16.FromBits(source[2 * t + 1]).ToSingle()), BitConverter.SingleToUInt32Bits(odd[t]));
        }
    }
}
