using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>
/// CPU kernel of <see cref="NativeTensor.Precision.UnscaleAndCheck"/>: one pass over a gradient, in place, multiplying
/// each element by the inverse scale and noting whether any input was NaN or ±Inf. Same results as
/// <see cref="Reference.PrecisionReference.Unscale"/>, by other means: a binary32 multiply here (one correct rounding
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
    /// </summary>
    private static bool Vectors<TStep, TLanes, TVector>(byte* data, long start, long end, float inverseScale)
        where TStep : IStep where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        int n = TLanes.Count;
        if (end - start < n) return TStep.Scalar(data, start, end, inverseScale);
        TVector scale = TLanes.Splat(BitConverter.SingleToUInt32Bits(inverseScale));
        TVector seen = TLanes.Splat(0);
        long last = end - n;
        TVector tail = Multiply<TLanes, TVector>(TStep.Load<TLanes, TVector>(data, last), scale, ref seen);
        long i = start;
        for (; i + 4 * n <= end; i += 4 * n)
        {
            TStep.Store<TLanes, TVector>(Multiply<TLanes, TVector>(TStep.Load<TLanes, TVector>(data, i), scale, ref seen), data, i);
            TStep.Store<TLanes, TVector>(Multiply<TLanes, TVector>(TStep.Load<TLanes, TVector>(data, i + n), scale, ref seen), data, i + n);
            TStep.Store<TLanes, TVector>(Multiply<TLanes, TVector>(TStep.Load<TLanes, TVector>(data, i + 2 * n), scale, ref seen), data, i + 2 * n);
            TStep.Store<TLanes, TVector>(Multiply<TLanes, TVector>(TStep.Load<TLanes, TVector>(data, i + 3 * n), scale, ref seen), data, i + 3 * n);
        }
        for (; i + n <= end; i += n)
            TStep.Store<TLanes, TVector>(Multiply<TLanes, TVector>(TStep.Load<TLanes, TVector>(data, i), scale, ref seen), data, i);
        if (i < end) TStep.Store<TLanes, TVector>(tail, data, last);
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

    /// <summary>The scalar rule of <see cref="Multiply{TLanes, TVector}"/>: the fallback, and vector loops too short for one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Multiply(uint bits, float scale, ref bool seen)
    {
        uint magnitude = bits & 0x7FFF_FFFF;
        seen |= magnitude >= 0x7F80_0000;
        if (magnitude > 0x7F80_0000) return bits | 0x0040_0000;
        return BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(bits) * scale);
    }

    /// <summary>One dtype: how a vector of elements becomes binary32 bits and goes back, and the scalar loop.</summary>
    private interface IStep
    {
        static abstract TVector Load<TLanes, TVector>(byte* data, long i) where TLanes : IUIntLanes<TVector> where TVector : struct;
        static abstract void Store<TLanes, TVector>(TVector product, byte* data, long i) where TLanes : IUIntLanes<TVector> where TVector : struct;
        static abstract bool Scalar(byte* data, long start, long end, float scale);
    }

    private readonly struct SingleStep : IStep
    {
        public static TVector Load<TLanes, TVector>(byte* data, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.Load((uint*)data + i);

        public static void Store<TLanes, TVector>(TVector product, byte* data, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.Store(product, (uint*)data + i);

        public static bool Scalar(byte* data, long start, long end, float scale)
        {
            bool seen = false;
            uint* elements = (uint*)data;
            for (long i = start; i < end; i++) elements[i] = Multiply(elements[i], scale, ref seen);
            return seen;
        }
    }

    /// <summary>Widened exactly (the top half of a binary32), multiplied in binary32, rounded back by <see cref="BFloat16.RoundBits"/>.</summary>
    private readonly struct BFloat16Step : IStep
    {
        public static TVector Load<TLanes, TVector>(byte* data, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.ShiftLeft(TLanes.LoadWidening((ushort*)data + i), 16);

        public static void Store<TLanes, TVector>(TVector product, byte* data, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.StoreNarrowing(PrecisionKernels.SingleToBFloat16<TLanes, TVector>(product), (ushort*)data + i);

        public static bool Scalar(byte* data, long start, long end, float scale)
        {
            bool seen = false;
            ushort* elements = (ushort*)data;
            for (long i = start; i < end; i++) elements[i] = BFloat16.RoundBits(Multiply((uint)elements[i] << 16, scale, ref seen));
            return seen;
        }
    }
}
