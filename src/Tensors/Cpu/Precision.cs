using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>
/// CPU kernels of <see cref="NativeTensor.Precision"/>: the scalar rules on raw bits, shared by the fallback path
/// and the tails of the vector paths. Same results as <see cref="Reference.PrecisionReference"/>, by other means:
/// integer bit arithmetic here, exact double arithmetic there.
/// </summary>
/// <remarks>
/// The subnormal paths let one binary32 add (or subtract) of 0.5 do the rounding, which relies on the floating-point
/// environment .NET runs with: round to nearest even, no flush-to-zero or denormals-are-zero. .NET never changes it;
/// native code that sets FTZ/DAZ on the calling thread would change these results (the device kernels, which cannot
/// rely on it, use integer shifts instead).
/// </remarks>
internal static unsafe class PrecisionKernels
{
    /// <summary>binary32 to binary16, round to nearest even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToHalf(uint bits)
    {
        uint sign = (bits >> 16) & 0x8000;
        uint a = bits & 0x7FFF_FFFF;
        if (a > 0x7F80_0000) return (ushort)(sign | 0x7E00 | ((a >> 13) & 0x3FF));   // NaN: quiet, top payload kept
        if (a >= 0x477F_F000) return (ushort)(sign | 0x7C00);                        // >= 65520: rounds to Inf (or is Inf)
        if (a >= 0x3880_0000)                                                        // normal in binary16 (>= 2^-14)
            return (ushort)(sign | ((a - 0x3800_0000 + 0x0FFF + ((a >> 13) & 1)) >> 13));
        // Subnormal or zero: adding 0.5 puts the value's 2^-24 quanta in the low mantissa bits of the sum, and the
        // hardware's round-to-nearest-even does the rounding; 0x0400 comes out as the smallest normal, correctly.
        float sum = BitConverter.UInt32BitsToSingle(a) + 0.5f;
        return (ushort)(sign | (BitConverter.SingleToUInt32Bits(sum) - 0x3F00_0000));
    }

    /// <summary>binary16 to binary32, exact on bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint HalfToSingle(ushort half)
    {
        uint sign = (uint)(half & 0x8000) << 16;
        uint em = half & 0x7FFFu;
        if (em >= 0x7C00) return sign | 0x7F80_0000 | ((em & 0x3FF) << 13);           // Inf, NaN (payload shifted, unchanged)
        if (em >= 0x0400) return sign | ((em << 13) + 0x3800_0000);                    // normal: rebias 15 -> 127
        // Subnormal or zero: the mantissa m is m * 2^-24; as a float, (2^-1 + m * 2^-24) - 2^-1, both steps exact.
        float value = BitConverter.UInt32BitsToSingle(0x3F00_0000 | em) - 0.5f;
        return sign | BitConverter.SingleToUInt32Bits(value);
    }

    /// <summary>
    /// Converts <paramref name="count"/> elements with the widest allowed vectors, over all cores when large;
    /// <paramref name="from"/> == <paramref name="to"/> copies.
    /// </summary>
    public static void Convert(byte* source, DType from, byte* destination, DType to, long count, SimdWidth width)
    {
        if (from == to)
        {
            BlockCopy.Copy(source, destination, count * from.SizeOf(), width);
            return;
        }
        nint s = (nint)source, d = (nint)destination;
        int parts = CpuParallel.Parts(count * (from.SizeOf() + to.SizeOf()), BlockCopy.ParallelThreshold);
        CpuParallel.For(parts, count, (start, end) => Range((byte*)s, from, (byte*)d, to, start, end, width));
    }

    /// <summary>One thread's conversion of <paramref name="count"/> elements (two different float dtypes): for kernels that split the work themselves.</summary>
    public static void ConvertSerial(byte* source, DType from, byte* destination, DType to, long count, SimdWidth width) =>
        Range(source, from, destination, to, 0, count, width);

    private static void Range(byte* source, DType from, byte* destination, DType to, long start, long end, SimdWidth width)
    {
        switch ((from, to))
        {
            case (DType.Float32, DType.Float16): Run<SingleToHalfStep>(source, destination, start, end, width); break;
            case (DType.Float32, DType.BFloat16): Run<SingleToBFloat16Step>(source, destination, start, end, width); break;
            case (DType.Float16, DType.Float32): Run<HalfToSingleStep>(source, destination, start, end, width); break;
            case (DType.BFloat16, DType.Float32): Run<BFloat16ToSingleStep>(source, destination, start, end, width); break;
            case (DType.Float16, DType.BFloat16): Run<HalfToBFloat16Step>(source, destination, start, end, width); break;
            case (DType.BFloat16, DType.Float16): Run<BFloat16ToHalfStep>(source, destination, start, end, width); break;
            default: throw new ArgumentException($"no conversion kernel from {from} to {to}: both must be different floating-point dtypes", nameof(to));
        }
    }

    private static void Run<TStep>(byte* source, byte* destination, long start, long end, SimdWidth width) where TStep : IStep =>
        SimdDriver.Run(new Converting<TStep>(source, destination), start, end, width);

    /// <summary>
    /// One direction as the driver's operator. Source and destination never overlap, so re-converting an element
    /// writes the same bits again: the <see cref="SimdTail.Overlap"/> tail, with the stores aligned.
    /// </summary>
    private readonly struct Converting<TStep>(byte* source, byte* destination) : ISimdOp where TStep : IStep
    {
        public static SimdTail Tail => SimdTail.Overlap;
        public static int OutputBytes => TStep.Types.To.SizeOf();
        public byte* Output => destination;

        public void Splat<TLanes, TVector>(out SimdConstants<TVector> constants) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            Unsafe.SkipInit(out constants);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Vector<TLanes, TVector>(long i, in SimdConstants<TVector> constants, ref TVector flags) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TStep.Vector<TLanes, TVector>(source, destination, i);

        public bool Scalar(long start, long end)
        {
            ConvertScalar(source, TStep.Types.From, destination, TStep.Types.To, start, end);
            return false;
        }

        public void Ahead(long i, long count) { }
    }

    // The rules of SingleToHalf and HalfToSingle above, lane-wise: every case computed, the right one selected.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVector SingleToHalf<TLanes, TVector>(TVector bits) where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        TVector sign = TLanes.And(TLanes.ShiftRight(bits, 16), TLanes.Splat(0x8000));
        TVector a = TLanes.And(bits, TLanes.Splat(0x7FFF_FFFF));
        TVector subnormal = TLanes.Subtract(TLanes.AddAsSingle(a, TLanes.Splat(0x3F00_0000)), TLanes.Splat(0x3F00_0000));
        TVector odd = TLanes.And(TLanes.ShiftRight(a, 13), TLanes.Splat(1));
        TVector normal = TLanes.ShiftRight(TLanes.Add(TLanes.Subtract(a, TLanes.Splat(0x3800_0000 - 0x0FFF)), odd), 13);
        TVector result = TLanes.Select(TLanes.GreaterThan(a, TLanes.Splat(0x387F_FFFF)), normal, subnormal);
        result = TLanes.Select(TLanes.GreaterThan(a, TLanes.Splat(0x477F_EFFF)), TLanes.Splat(0x7C00), result);
        result = TLanes.Select(TLanes.GreaterThan(a, TLanes.Splat(0x7F80_0000)), TLanes.Or(TLanes.Splat(0x7E00), TLanes.And(TLanes.ShiftRight(a, 13), TLanes.Splat(0x3FF))), result);
        return TLanes.Or(result, sign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVector HalfToSingle<TLanes, TVector>(TVector half) where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        TVector sign = TLanes.ShiftLeft(TLanes.And(half, TLanes.Splat(0x8000)), 16);
        TVector em = TLanes.And(half, TLanes.Splat(0x7FFF));
        TVector subnormal = TLanes.SubtractAsSingle(TLanes.Or(em, TLanes.Splat(0x3F00_0000)), TLanes.Splat(0x3F00_0000));
        TVector normal = TLanes.Add(TLanes.ShiftLeft(em, 13), TLanes.Splat(0x3800_0000));
        TVector special = TLanes.Or(TLanes.Splat(0x7F80_0000), TLanes.ShiftLeft(TLanes.And(em, TLanes.Splat(0x3FF)), 13));
        TVector result = TLanes.Select(TLanes.GreaterThan(em, TLanes.Splat(0x03FF)), normal, subnormal);
        result = TLanes.Select(TLanes.GreaterThan(em, TLanes.Splat(0x7BFF)), special, result);
        return TLanes.Or(result, sign);
    }

    /// <summary><see cref="BFloat16.RoundBits"/>, lane-wise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVector SingleToBFloat16<TLanes, TVector>(TVector bits) where TLanes : IUIntLanes<TVector> where TVector : struct
    {
        TVector upper = TLanes.ShiftRight(bits, 16);
        TVector rounded = TLanes.ShiftRight(TLanes.Add(TLanes.Add(bits, TLanes.Splat(0x7FFF)), TLanes.And(upper, TLanes.Splat(1))), 16);
        TVector nan = TLanes.GreaterThan(TLanes.And(bits, TLanes.Splat(0x7FFF_FFFF)), TLanes.Splat(0x7F80_0000));
        return TLanes.Select(nan, TLanes.Or(upper, TLanes.Splat(0x0040)), rounded);
    }

    /// <summary>One direction: a vector of elements at index i, and the scalar rule for short ranges and the fallback.</summary>
    private interface IStep
    {
        /// <summary>The direction, for the scalar rule and the size of a converted element.</summary>
        static abstract (DType From, DType To) Types { get; }
        static abstract void Vector<TLanes, TVector>(byte* source, byte* destination, long i) where TLanes : IUIntLanes<TVector> where TVector : struct;
    }

    private readonly struct SingleToHalfStep : IStep
    {
        public static void Vector<TLanes, TVector>(byte* s, byte* d, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.StoreNarrowing(SingleToHalf<TLanes, TVector>(TLanes.Load((uint*)s + i)), (ushort*)d + i);
        public static (DType From, DType To) Types => (DType.Float32, DType.Float16);
    }

    private readonly struct SingleToBFloat16Step : IStep
    {
        public static void Vector<TLanes, TVector>(byte* s, byte* d, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.StoreNarrowing(SingleToBFloat16<TLanes, TVector>(TLanes.Load((uint*)s + i)), (ushort*)d + i);
        public static (DType From, DType To) Types => (DType.Float32, DType.BFloat16);
    }

    private readonly struct HalfToSingleStep : IStep
    {
        public static void Vector<TLanes, TVector>(byte* s, byte* d, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.Store(HalfToSingle<TLanes, TVector>(TLanes.LoadWidening((ushort*)s + i)), (uint*)d + i);
        public static (DType From, DType To) Types => (DType.Float16, DType.Float32);
    }

    private readonly struct BFloat16ToSingleStep : IStep
    {
        public static void Vector<TLanes, TVector>(byte* s, byte* d, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.Store(TLanes.ShiftLeft(TLanes.LoadWidening((ushort*)s + i), 16), (uint*)d + i);
        public static (DType From, DType To) Types => (DType.BFloat16, DType.Float32);
    }

    private readonly struct HalfToBFloat16Step : IStep
    {
        public static void Vector<TLanes, TVector>(byte* s, byte* d, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.StoreNarrowing(SingleToBFloat16<TLanes, TVector>(HalfToSingle<TLanes, TVector>(TLanes.LoadWidening((ushort*)s + i))), (ushort*)d + i);
        public static (DType From, DType To) Types => (DType.Float16, DType.BFloat16);
    }

    private readonly struct BFloat16ToHalfStep : IStep
    {
        public static void Vector<TLanes, TVector>(byte* s, byte* d, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.StoreNarrowing(SingleToHalf<TLanes, TVector>(TLanes.ShiftLeft(TLanes.LoadWidening((ushort*)s + i), 16)), (ushort*)d + i);
        public static (DType From, DType To) Types => (DType.BFloat16, DType.Float16);
    }

    /// <summary>Elements [start, end) one at a time: the fallback, and ranges shorter than a Vector128.</summary>
    internal static void ConvertScalar(byte* source, DType from, byte* destination, DType to, long start, long end)
    {
        for (long i = start; i < end; i++)
        {
            uint single = from switch
            {
                DType.Float32 => ((uint*)source)[i],
                DType.Float16 => HalfToSingle(((ushort*)source)[i]),
                _ => (uint)((ushort*)source)[i] << 16,
            };
            switch (to)
            {
                case DType.Float32: ((uint*)destination)[i] = single; break;
                case DType.Float16: ((ushort*)destination)[i] = SingleToHalf(single); break;
                default: ((ushort*)destination)[i] = BFloat16.RoundBits(single); break;
            }
        }
    }
}
