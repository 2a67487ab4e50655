using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>
/// CPU kernel of <see cref="NativeTensor.Precision.UnscaleAndCheck"/>: one pass over a gradient, in place, multiplying
/// each element by the inverse scale and noting whether any input was NaN or ±Inf. Same results as
/// <see cref="Reference.UnscaleReference.Unscale"/>, by other means: a binary32 multiply here (one correct rounding
/// under the round-to-nearest, no-FTZ environment .NET runs with), an exact double product rounded once there.
/// </summary>
internal static unsafe class UnscaleKernels
{
    /// <summary>Unscales <paramref name="count"/> Float32 or BFloat16 elements with the widest allowed vectors, over all cores when large.</summary>
    /// <returns>Whether any input element was NaN or ±Inf.</returns>
    public static bool UnscaleAndCheck(byte* data, DType dtype, long count, float inverseScale, SimdWidth width)
    {
        nint d = (nint)data;
        int parts = CpuParallel.Parts(2 * count * dtype.SizeOf(), BlockCopy.ParallelThreshold);
        // Parts only ever store true, and Parallel.For's join orders their stores before the read below.
        bool nonFinite = false;
        CpuParallel.For(parts, count, (start, end) =>
        {
            bool seen = dtype == DType.Float32
                ? SimdDriver.Run(new Unscaling<SingleStep>((byte*)d, inverseScale), start, end, width)
                : SimdDriver.Run(new Unscaling<BFloat16Step>((byte*)d, inverseScale), start, end, width);
            if (seen) nonFinite = true;
        });
        return nonFinite;
    }

    /// <summary>
    /// Whether any of <paramref name="count"/> Float32, Float16 or BFloat16 elements is NaN or ±Inf (its exponent field
    /// all ones), read-only, over all cores when large. Each 32-bit word is tested against two exponent masks, so one
    /// test covers a Float32 element or two 16-bit ones.
    /// </summary>
    public static bool FindNonFinite(byte* data, DType dtype, long count, SimdWidth width)
    {
        (uint low, uint high) = dtype switch
        {
            DType.Float32 => (0x7F80_0000u, 0x7F80_0000u),
            DType.Float16 => (0x0000_7C00u, 0x7C00_0000u),
            DType.BFloat16 => (0x0000_7F80u, 0x7F80_0000u),
            _ => throw new ArgumentException($"no non-finite check for {dtype}", nameof(dtype)),
        };
        long bytes = count * dtype.SizeOf();
        long words = bytes / 4;
        // An odd 16-bit element after the last whole word: its exponent sits in the low half.
        if (bytes % 4 != 0 && (*(ushort*)(data + bytes - 2) & low) == low) return true;
        nint d = (nint)data;
        int parts = CpuParallel.Parts(words * 4, BlockCopy.ParallelThreshold);
        bool nonFinite = false;
        CpuParallel.For(parts, words, (start, end) =>
        {
            if (SimdDriver.Run(new NonFiniteSearch((uint*)d, low, high), start, end, width)) nonFinite = true;
        });
        return nonFinite;
    }

    /// <summary>
    /// The check as the driver's operator: read-only, so the <see cref="SimdTail.Search"/> tail, which stops at the
    /// first turn of vectors that saw one and never reads a word past the end.
    /// </summary>
    private readonly struct NonFiniteSearch(uint* words, uint low, uint high) : ISimdOp
    {
        public static SimdTail Tail => SimdTail.Search;

        public void Splat<TLanes, TVector>(out SimdConstants<TVector> c) where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            Unsafe.SkipInit(out c);
            c.C0 = TLanes.Splat(low);
            c.C1 = TLanes.Splat(low - 1);
            c.C2 = TLanes.Splat(high);
            c.C3 = TLanes.Splat(high - 1);
        }

        /// <summary>A word's exponent field is all ones where (word &amp; mask) &gt; mask - 1, for either mask.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Vector<TLanes, TVector>(long i, in SimdConstants<TVector> c, ref TVector flags) where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            TVector w = TLanes.Load(words + i);
            flags = TLanes.Or(flags, TLanes.Or(TLanes.GreaterThan(TLanes.And(w, c.C0), c.C1), TLanes.GreaterThan(TLanes.And(w, c.C2), c.C3)));
        }

        public bool Scalar(long start, long end)
        {
            for (long i = start; i < end; i++)
                if ((words[i] & low) == low || (words[i] & high) == high) return true;
            return false;
        }

        public void Ahead(long i, long count) { }
    }

    /// <summary>
    /// The unscale as the driver's operator: in place, so scaling an element twice would be wrong, and the driver's
    /// <see cref="SimdTail.Once"/> tail finishes with narrower vectors and the scalar rule instead of an overlapping
    /// vector. A vector holds <see cref="IStep.ElementsPerWord"/> elements per 32-bit lane.
    /// </summary>
    private readonly struct Unscaling<TStep>(byte* data, float scale) : ISimdOp where TStep : IStep
    {
        public static SimdTail Tail => SimdTail.Once;
        public static int ElementsPerLane => TStep.ElementsPerWord;

        public void Splat<TLanes, TVector>(out SimdConstants<TVector> c) where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            Unsafe.SkipInit(out c);
            c.C0 = TLanes.Splat(BitConverter.SingleToUInt32Bits(scale));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Vector<TLanes, TVector>(long i, in SimdConstants<TVector> c, ref TVector flags) where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            uint* at = (uint*)(data + i * (4 / TStep.ElementsPerWord));
            TLanes.Store(TStep.Words<TLanes, TVector>(TLanes.Load(at), c.C0, ref flags), at);
        }

        public bool Scalar(long start, long end)
        {
            bool seen = false;
            for (long i = start; i < end; i++)
                if (TStep.ElementsPerWord == 1) ((uint*)data)[i] = Multiply(((uint*)data)[i], scale, ref seen);
                else ((ushort*)data)[i] = BFloat16.RoundBits(Multiply((uint)((ushort*)data)[i] << 16, scale, ref seen));
            return seen;
        }

        public void Ahead(long i, long count) { }
    }

    /// <summary>
    /// binary32 bits times the scale, lane-wise; marks NaN and ±Inf inputs in <paramref name="seen"/>. A NaN lane is
    /// not taken from the multiply (which NaN a product returns is the hardware's choice) but is the input quieted.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVector Multiply<TLanes, TVector>(TVector bits, TVector scale, ref TVector seen) where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        TVector magnitude = TLanes.And(bits, TLanes.Splat(0x7FFF_FFFF));
        seen = TLanes.Or(seen, TLanes.GreaterThan(magnitude, TLanes.Splat(0x7F7F_FFFF)));
        TVector product = TLanes.MultiplyAsSingle(bits, scale);
        return TLanes.Select(TLanes.GreaterThan(magnitude, TLanes.Splat(0x7F80_0000)), TLanes.Or(bits, TLanes.Splat(0x0040_0000)), product);
    }

    /// <summary>
    /// A BFloat16 widened into the top half of <paramref name="bits"/> (low half zero), times the scale, rounded to
    /// BFloat16 in the top half of the result (<see cref="BFloat16.RoundBits"/>; the low half is left over). The scale
    /// is finite and positive, so the product is NaN only for a NaN input, whose rule is applied to the input instead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVector MultiplyHigh<TLanes, TVector>(TVector bits, TVector scale, ref TVector seen) where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        TVector magnitude = TLanes.And(bits, TLanes.Splat(0x7FFF_FFFF));
        seen = TLanes.Or(seen, TLanes.GreaterThan(magnitude, TLanes.Splat(0x7F7F_FFFF)));
        TVector product = TLanes.MultiplyAsSingle(bits, scale);
        TVector rounded = TLanes.Add(TLanes.Add(product, TLanes.Splat(0x7FFF)), TLanes.And(TLanes.ShiftRight(product, 16), TLanes.Splat(1)));
        return TLanes.Select(TLanes.GreaterThan(magnitude, TLanes.Splat(0x7F80_0000)), TLanes.Or(bits, TLanes.Splat(0x0040_0000)), rounded);
    }

    /// <summary>The scalar rule of <see cref="Multiply{TLanes, TVector}"/>: the fallback, and what is left after the Vector128s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Multiply(uint bits, float scale, ref bool seen)
    {
        uint magnitude = bits & 0x7FFF_FFFF;
        seen |= magnitude >= 0x7F80_0000;
        if (magnitude > 0x7F80_0000) return bits | 0x0040_0000;
        return BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(bits) * scale);
    }

    /// <summary>One dtype: how a vector of 32-bit words of elements is scaled.</summary>
    private interface IStep
    {
        /// <summary>Elements in one 32-bit word: 1 for Float32, 2 for BFloat16.</summary>
        static abstract int ElementsPerWord { get; }
        static abstract TVector Words<TLanes, TVector>(TVector words, TVector scale, ref TVector seen) where TLanes : IUIntLanes<TVector> where TVector : struct;
    }

    private readonly struct SingleStep : IStep
    {
        public static int ElementsPerWord => 1;

        public static TVector Words<TLanes, TVector>(TVector words, TVector scale, ref TVector seen) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            Multiply<TLanes, TVector>(words, scale, ref seen);
    }

    /// <summary>
    /// Two BFloat16 per 32-bit lane, each widened exactly in place (the high one masked, the low one shifted up),
    /// multiplied in binary32 and rounded back by <see cref="BFloat16.RoundBits"/>: no widening or narrowing shuffles,
    /// which held a widen-per-lane version to 66% of a copy of the same bytes (2-core AVX-512 host).
    /// </summary>
    private readonly struct BFloat16Step : IStep
    {
        public static int ElementsPerWord => 2;

        public static TVector Words<TLanes, TVector>(TVector words, TVector scale, ref TVector seen) where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            TVector high = MultiplyHigh<TLanes, TVector>(TLanes.And(words, TLanes.Splat(0xFFFF_0000)), scale, ref seen);
            TVector low = MultiplyHigh<TLanes, TVector>(TLanes.ShiftLeft(words, 16), scale, ref seen);
            return TLanes.Or(TLanes.And(high, TLanes.Splat(0xFFFF_0000)), TLanes.ShiftRight(low, 16));
        }
    }
}
