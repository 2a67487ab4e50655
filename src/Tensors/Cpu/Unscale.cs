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
            if (Range((byte*)d, dtype, start, end, inverseScale, width)) nonFinite = true;
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
            if (FindNonFinite((uint*)d, start, end, low, high, width)) nonFinite = true;
        });
        return nonFinite;
    }

    private static bool FindNonFinite(uint* words, long start, long end, uint low, uint high, SimdWidth width) => width switch
    {
        SimdWidth.V512 => FindNonFinite<Lanes512, Vector512<uint>>(words, start, end, low, high),
        SimdWidth.V256 => FindNonFinite<Lanes256, Vector256<uint>>(words, start, end, low, high),
        SimdWidth.V128 => FindNonFinite<Lanes128, Vector128<uint>>(words, start, end, low, high),
        _ => FindNonFiniteScalar(words, start, end, low, high),
    };

    /// <summary>Four vectors a turn, stopping at the first turn that saw one; the tail by the scalar rule.</summary>
    private static bool FindNonFinite<TLanes, TVector>(uint* words, long start, long end, uint low, uint high)
        where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        int n = TLanes.Count;
        TVector lowMask = TLanes.Splat(low), lowBelow = TLanes.Splat(low - 1);
        TVector highMask = TLanes.Splat(high), highBelow = TLanes.Splat(high - 1);
        long i = start;
        for (; i + 4 * n <= end; i += 4 * n)
        {
            TVector seen = TLanes.Splat(0);
            for (int k = 0; k < 4; k++)
            {
                TVector w = TLanes.Load(words + i + k * n);
                seen = TLanes.Or(seen, TLanes.Or(TLanes.GreaterThan(TLanes.And(w, lowMask), lowBelow), TLanes.GreaterThan(TLanes.And(w, highMask), highBelow)));
            }
            if (TLanes.AnyNonZero(seen)) return true;
        }
        return FindNonFiniteScalar(words, i, end, low, high);
    }

    private static bool FindNonFiniteScalar(uint* words, long start, long end, uint low, uint high)
    {
        for (long i = start; i < end; i++)
            if ((words[i] & low) == low || (words[i] & high) == high) return true;
        return false;
    }

    private static bool Range(byte* data, DType dtype, long start, long end, float inverseScale, SimdWidth width) => dtype == DType.Float32
        ? Widths<SingleStep>(data, start, end, inverseScale, width)
        : Widths<BFloat16Step>(data, start, end, inverseScale, width);

    private static bool Widths<TStep>(byte* data, long start, long end, float inverseScale, SimdWidth width) where TStep : IStep => width switch
    {
        SimdWidth.V512 => Vectors<TStep, Lanes512, Vector512<uint>>(data, start, end, inverseScale),
        SimdWidth.V256 => Vectors<TStep, Lanes256, Vector256<uint>>(data, start, end, inverseScale),
        SimdWidth.V128 => Vectors<TStep, Lanes128, Vector128<uint>>(data, start, end, inverseScale),
        _ => TStep.Scalar(data, start, end, inverseScale),
    };

    /// <summary>
    /// Whole vectors through [start, end), four per turn, and a last vector that ends exactly at the tail. In place,
    /// re-processing the overlap would scale it twice, so the last vector is read and multiplied before anything is
    /// written and stored at the end, over the identical values the loop wrote there (the TensorPrimitives way).
    /// A vector holds <see cref="IStep.ElementsPerWord"/> elements per 32-bit lane.
    /// </summary>
    private static bool Vectors<TStep, TLanes, TVector>(byte* data, long start, long end, float inverseScale)
        where TStep : IStep where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        int n = TLanes.Count * TStep.ElementsPerWord;
        if (end - start < n) return TStep.Scalar(data, start, end, inverseScale);
        int size = 4 / TStep.ElementsPerWord;
        TVector scale = TLanes.Splat(BitConverter.SingleToUInt32Bits(inverseScale));
        TVector seen = TLanes.Splat(0);
        uint* last = (uint*)(data + (end - n) * size);
        TVector tail = TStep.Words<TLanes, TVector>(TLanes.Load(last), scale, ref seen);
        long i = start;
        for (; i + 4 * n <= end; i += 4 * n)
        {
            uint* at = (uint*)(data + i * size);
            int lanes = TLanes.Count;
            TLanes.Store(TStep.Words<TLanes, TVector>(TLanes.Load(at), scale, ref seen), at);
            TLanes.Store(TStep.Words<TLanes, TVector>(TLanes.Load(at + lanes), scale, ref seen), at + lanes);
            TLanes.Store(TStep.Words<TLanes, TVector>(TLanes.Load(at + 2 * lanes), scale, ref seen), at + 2 * lanes);
            TLanes.Store(TStep.Words<TLanes, TVector>(TLanes.Load(at + 3 * lanes), scale, ref seen), at + 3 * lanes);
        }
        for (; i + n <= end; i += n)
        {
            uint* at = (uint*)(data + i * size);
            TLanes.Store(TStep.Words<TLanes, TVector>(TLanes.Load(at), scale, ref seen), at);
        }
        if (i < end) TLanes.Store(tail, last);
        return TLanes.AnyNonZero(seen);
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

    /// <summary>The scalar rule of <see cref="Multiply{TLanes, TVector}"/>: the fallback, and vector loops too short for one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Multiply(uint bits, float scale, ref bool seen)
    {
        uint magnitude = bits & 0x7FFF_FFFF;
        seen |= magnitude >= 0x7F80_0000;
        if (magnitude > 0x7F80_0000) return bits | 0x0040_0000;
        return BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(bits) * scale);
    }

    /// <summary>One dtype: how a vector of 32-bit words of elements is scaled, and the scalar loop.</summary>
    private interface IStep
    {
        /// <summary>Elements in one 32-bit word: 1 for Float32, 2 for BFloat16.</summary>
        static abstract int ElementsPerWord { get; }
        static abstract TVector Words<TLanes, TVector>(TVector words, TVector scale, ref TVector seen) where TLanes : IUIntLanes<TVector> where TVector : struct;
        static abstract bool Scalar(byte* data, long start, long end, float scale);
    }

    private readonly struct SingleStep : IStep
    {
        public static int ElementsPerWord => 1;

        public static TVector Words<TLanes, TVector>(TVector words, TVector scale, ref TVector seen) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            Multiply<TLanes, TVector>(words, scale, ref seen);

        public static bool Scalar(byte* data, long start, long end, float scale)
        {
            bool seen = false;
            uint* elements = (uint*)data;
            for (long i = start; i < end; i++) elements[i] = Multiply(elements[i], scale, ref seen);
            return seen;
        }
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

        public static bool Scalar(byte* data, long start, long end, float scale)
        {
            bool seen = false;
            ushort* elements = (ushort*)data;
            for (long i = start; i < end; i++) elements[i] = BFloat16.RoundBits(Multiply((uint)elements[i] << 16, scale, ref seen));
            return seen;
        }
    }
}
