using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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
}
