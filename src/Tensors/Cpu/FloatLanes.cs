using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeTensor.Cpu;

/// <summary>
/// The lane-wise binary32 operations the attention tiles need, behind one interface so each tile routine is written once
/// and runs as Vector512, Vector256, Vector128 or plain float (the operator-struct pattern of <see cref="IUIntLanes{TVector}"/>:
/// the JIT specialises every generic method per struct, so nothing here costs a call).
/// </summary>
internal unsafe interface IFloatLanes<TVector> where TVector : struct
{
    /// <summary>Lanes per vector.</summary>
    static abstract int Count { get; }
    static abstract TVector Load(float* source);
    static abstract void Store(TVector value, float* destination);
    static abstract TVector Splat(float value);
    /// <summary>a * b + c, rounded once.</summary>
    static abstract TVector Fma(TVector a, TVector b, TVector c);
    static abstract TVector Add(TVector left, TVector right);
    static abstract TVector Subtract(TVector left, TVector right);
    static abstract TVector Multiply(TVector left, TVector right);
    /// <summary>The larger of each pair, NaN if either is NaN (IEEE 754-2019 maximum).</summary>
    static abstract TVector Max(TVector left, TVector right);
    /// <summary>Clamps into [lo, hi] with the hardware's min and max (a NaN lane's result is unspecified: callers restore it).</summary>
    static abstract TVector ClampNative(TVector value, TVector lo, TVector hi);
    /// <summary>Rounds each lane to the nearest integer, ties to even, as a float.</summary>
    static abstract TVector Round(TVector value);
    /// <summary>Multiplies each lane by 2^n for integer-valued n (adds n to the exponent field: the result's exponent must stay normal).</summary>
    static abstract TVector ScaleByPowerOfTwo(TVector value, TVector n);
    /// <summary>Lanes of <paramref name="nan"/> where <paramref name="value"/> is NaN, else of <paramref name="otherwise"/>.</summary>
    static abstract TVector SelectNaN(TVector value, TVector nan, TVector otherwise);
    static abstract float MaxAcross(TVector value);
    static abstract float SumAcross(TVector value);
    /// <summary>
    /// The sums across <see cref="Count"/> vectors at once: lane c of the result is the sum of the lanes of the vector
    /// stored at <c>partials + c * Count</c>. A tree of shuffles and adds, Count - 1 adds in all where a sum per vector
    /// would take log2(Count) dependent steps each.
    /// </summary>
    static abstract TVector SumEach(float* partials);
    /// <summary>
    /// <see cref="Count"/> pairs of BFloat16 (one 32-bit word each) widened exactly: the first element of each pair to
    /// <paramref name="even"/>, the second to <paramref name="odd"/> (a shift and a mask, no shuffle).
    /// </summary>
    static abstract void LoadBFloat16Pairs(uint* source, out TVector even, out TVector odd);
}

/// <summary>Folds used by <see cref="IFloatLanes{TVector}.SumEach"/> where the instruction set has no better tree.</summary>
internal static unsafe class FloatLanes
{
    /// <summary>Lane c = the sum of the lanes of vector c, one vector at a time.</summary>
    public static TVector SumEachSerially<TLanes, TVector>(float* partials) where TLanes : IFloatLanes<TVector> where TVector : struct
    {
        float* sums = stackalloc float[TLanes.Count];
        for (int c = 0; c < TLanes.Count; c++) sums[c] = TLanes.SumAcross(TLanes.Load(partials + c * TLanes.Count));
        return TLanes.Load(sums);
    }
}

internal readonly unsafe struct Floats512 : IFloatLanes<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Splat(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> left, Vector512<float> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> left, Vector512<float> right) => left - right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> left, Vector512<float> right) => left * right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> left, Vector512<float> right) => Vector512.Max(left, right);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> ClampNative(Vector512<float> value, Vector512<float> lo, Vector512<float> hi) => Vector512.MinNative(Vector512.MaxNative(value, lo), hi);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Round(Vector512<float> value) => Vector512.Round(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> ScaleByPowerOfTwo(Vector512<float> value, Vector512<float> n) =>
        (value.AsInt32() + (Vector512.ConvertToInt32(n) << 23)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> SelectNaN(Vector512<float> value, Vector512<float> nan, Vector512<float> otherwise) =>
        Vector512.ConditionalSelect(Vector512.Equals(value, value), otherwise, nan);
    public static float MaxAcross(Vector512<float> value) => Floats256.MaxAcross(Vector256.Max(value.GetLower(), value.GetUpper()));
    public static float SumAcross(Vector512<float> value) => Vector512.Sum(value);

    /// <summary>
    /// Four levels of folds, each adding the two halves a shuffle pair selects from two vectors: 128-bit lanes (vshuff32x4)
    /// twice, then floats within them (vshufps) twice. The tree leaves vector 4t + u's sum in lane 4u + t, so the vectors
    /// are taken in that transposed order and the sums come out in place.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> SumEach(float* partials)
    {
        if (!Avx512F.IsSupported) return FloatLanes.SumEachSerially<Floats512, Vector512<float>>(partials);
        Vector512<float> V(int m) => Vector512.Load(partials + 16 * (4 * (m % 4) + m / 4));
        // Each fold adds the two selections of a pair: "halves" keeps x's first and y's first half of the sources apart
        // from their second halves, "pairs" the even-numbered from the odd-numbered parts (128-bit lanes or floats).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> LaneHalves(Vector512<float> x, Vector512<float> y) => Avx512F.Shuffle4x128(x, y, 0x44) + Avx512F.Shuffle4x128(x, y, 0xEE);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> LanePairs(Vector512<float> x, Vector512<float> y) => Avx512F.Shuffle4x128(x, y, 0x88) + Avx512F.Shuffle4x128(x, y, 0xDD);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> FloatHalves(Vector512<float> x, Vector512<float> y) => Avx512F.Shuffle(x, y, 0x44) + Avx512F.Shuffle(x, y, 0xEE);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> FloatPairs(Vector512<float> x, Vector512<float> y) => Avx512F.Shuffle(x, y, 0x88) + Avx512F.Shuffle(x, y, 0xDD);
        Vector512<float> b0 = LaneHalves(V(0), V(1)), b1 = LaneHalves(V(2), V(3)), b2 = LaneHalves(V(4), V(5)), b3 = LaneHalves(V(6), V(7)),
            b4 = LaneHalves(V(8), V(9)), b5 = LaneHalves(V(10), V(11)), b6 = LaneHalves(V(12), V(13)), b7 = LaneHalves(V(14), V(15));
        Vector512<float> c0 = LanePairs(b0, b1), c1 = LanePairs(b2, b3), c2 = LanePairs(b4, b5), c3 = LanePairs(b6, b7);
        return FloatPairs(FloatHalves(c0, c1), FloatHalves(c2, c3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBFloat16Pairs(uint* source, out Vector512<float> even, out Vector512<float> odd)
    {
        Vector512<uint> pairs = Vector512.Load(source);
        even = (pairs << 16).AsSingle();
        odd = (pairs & Vector512.Create(0xFFFF0000u)).AsSingle();
    }
}

internal readonly unsafe struct Floats256 : IFloatLanes<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> left, Vector256<float> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> left, Vector256<float> right) => left - right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> left, Vector256<float> right) => left * right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> left, Vector256<float> right) => Vector256.Max(left, right);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> ClampNative(Vector256<float> value, Vector256<float> lo, Vector256<float> hi) => Vector256.MinNative(Vector256.MaxNative(value, lo), hi);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Round(Vector256<float> value) => Vector256.Round(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> ScaleByPowerOfTwo(Vector256<float> value, Vector256<float> n) =>
        (value.AsInt32() + (Vector256.ConvertToInt32(n) << 23)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> SelectNaN(Vector256<float> value, Vector256<float> nan, Vector256<float> otherwise) =>
        Vector256.ConditionalSelect(Vector256.Equals(value, value), otherwise, nan);
    public static float MaxAcross(Vector256<float> value) => Floats128.MaxAcross(Vector128.Max(value.GetLower(), value.GetUpper()));
    public static float SumAcross(Vector256<float> value) => Vector256.Sum(value);

    /// <summary>
    /// Three levels of folds: 128-bit lanes (vperm2f128), then floats within them (vshufps) twice. The tree leaves vector
    /// 4t + u's sum in lane 2u + t, so the vectors are taken in that order and the sums come out in place.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> SumEach(float* partials)
    {
        if (!Avx.IsSupported) return FloatLanes.SumEachSerially<Floats256, Vector256<float>>(partials);
        Vector256<float> V(int m) => Vector256.Load(partials + 8 * (4 * (m % 2) + m / 2));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> Halves(Vector256<float> x, Vector256<float> y) => Avx.Permute2x128(x, y, 0x20) + Avx.Permute2x128(x, y, 0x31);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> FloatHalves(Vector256<float> x, Vector256<float> y) => Avx.Shuffle(x, y, 0x44) + Avx.Shuffle(x, y, 0xEE);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> FloatPairs(Vector256<float> x, Vector256<float> y) => Avx.Shuffle(x, y, 0x88) + Avx.Shuffle(x, y, 0xDD);
        Vector256<float> b0 = Halves(V(0), V(1)), b1 = Halves(V(2), V(3)), b2 = Halves(V(4), V(5)), b3 = Halves(V(6), V(7));
        return FloatPairs(FloatHalves(b0, b1), FloatHalves(b2, b3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBFloat16Pairs(uint* source, out Vector256<float> even, out Vector256<float> odd)
    {
        Vector256<uint> pairs = Vector256.Load(source);
        even = (pairs << 16).AsSingle();
        odd = (pairs & Vector256.Create(0xFFFF0000u)).AsSingle();
    }
}

internal readonly unsafe struct Floats128 : IFloatLanes<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Splat(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> left, Vector128<float> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> left, Vector128<float> right) => left - right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> left, Vector128<float> right) => left * right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> left, Vector128<float> right) => Vector128.Max(left, right);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> ClampNative(Vector128<float> value, Vector128<float> lo, Vector128<float> hi) => Vector128.MinNative(Vector128.MaxNative(value, lo), hi);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Round(Vector128<float> value) => Vector128.Round(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> ScaleByPowerOfTwo(Vector128<float> value, Vector128<float> n) =>
        (value.AsInt32() + (Vector128.ConvertToInt32(n) << 23)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> SelectNaN(Vector128<float> value, Vector128<float> nan, Vector128<float> otherwise) =>
        Vector128.ConditionalSelect(Vector128.Equals(value, value), otherwise, nan);
    public static float MaxAcross(Vector128<float> value)
    {
        float m = value.GetElement(0);
        for (int i = 1; i < 4; i++) m = MathF.Max(m, value.GetElement(i));
        return m;
    }
    public static float SumAcross(Vector128<float> value) => Vector128.Sum(value);

    /// <summary>Two levels of folds of floats (shufps); the sums come out in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> SumEach(float* partials)
    {
        if (!Sse.IsSupported) return FloatLanes.SumEachSerially<Floats128, Vector128<float>>(partials);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector128<float> FloatHalves(Vector128<float> x, Vector128<float> y) => Sse.Shuffle(x, y, 0x44) + Sse.Shuffle(x, y, 0xEE);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector128<float> FloatPairs(Vector128<float> x, Vector128<float> y) => Sse.Shuffle(x, y, 0x88) + Sse.Shuffle(x, y, 0xDD);
        return FloatPairs(FloatHalves(Vector128.Load(partials), Vector128.Load(partials + 4)), FloatHalves(Vector128.Load(partials + 8), Vector128.Load(partials + 12)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBFloat16Pairs(uint* source, out Vector128<float> even, out Vector128<float> odd)
    {
        Vector128<uint> pairs = Vector128.Load(source);
        even = (pairs << 16).AsSingle();
        odd = (pairs & Vector128.Create(0xFFFF0000u)).AsSingle();
    }
}

/// <summary>One lane: the scalar path (<c>DOTNET_EnableHWIntrinsic=0</c>, or a test pinning it), same arithmetic.</summary>
internal readonly unsafe struct Floats1 : IFloatLanes<float>
{
    public static int Count => 1;
    public static float Load(float* source) => *source;
    public static void Store(float value, float* destination) => *destination = value;
    public static float Splat(float value) => value;
    public static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
    public static float Add(float left, float right) => left + right;
    public static float Subtract(float left, float right) => left - right;
    public static float Multiply(float left, float right) => left * right;
    public static float Max(float left, float right) => MathF.Max(left, right);
    public static float ClampNative(float value, float lo, float hi) => Math.Clamp(value, lo, hi);
    public static float Round(float value) => MathF.Round(value, MidpointRounding.ToEven);
    public static float ScaleByPowerOfTwo(float value, float n) => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(value) + ((int)n << 23));
    public static float SelectNaN(float value, float nan, float otherwise) => float.IsNaN(value) ? nan : otherwise;
    public static float MaxAcross(float value) => value;
    public static float SumAcross(float value) => value;
    public static float SumEach(float* partials) => *partials;
    public static void LoadBFloat16Pairs(uint* source, out float even, out float odd)
    {
        even = BitConverter.UInt32BitsToSingle(*source << 16);
        odd = BitConverter.UInt32BitsToSingle(*source & 0xFFFF0000u);
    }
}
