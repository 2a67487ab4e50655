using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeTensor.Cpu;

/// <summary>
/// The handful of lane-wise operations on 32-bit unsigned lanes that the conversion and unscale kernels need, behind one
/// interface so each kernel is written once and runs as Vector512, Vector256 or Vector128 (the operator-struct
/// pattern: the JIT specialises the generic method per struct, so nothing here costs a call).
/// </summary>
internal unsafe interface IUIntLanes<TVector> where TVector : struct
{
    /// <summary>Lanes per vector.</summary>
    static abstract int Count { get; }
    static abstract TVector Load(uint* source);
    static abstract void Store(TVector value, uint* destination);
    /// <summary>Loads <see cref="Count"/> 16-bit values, zero-extended into the lanes.</summary>
    static abstract TVector LoadWidening(ushort* source);
    /// <summary>Stores the low 16 bits of each lane as <see cref="Count"/> 16-bit values.</summary>
    static abstract void StoreNarrowing(TVector value, ushort* destination);
    static abstract TVector Splat(uint value);
    static abstract TVector Add(TVector left, TVector right);
    static abstract TVector Subtract(TVector left, TVector right);
    static abstract TVector And(TVector left, TVector right);
    static abstract TVector Or(TVector left, TVector right);
    static abstract TVector ShiftLeft(TVector value, int count);
    static abstract TVector ShiftRight(TVector value, int count);
    /// <summary>All-ones lanes where left &gt; right (unsigned), else zero.</summary>
    static abstract TVector GreaterThan(TVector left, TVector right);
    /// <summary>Lanes of <paramref name="ifTrue"/> where the mask is set, else of <paramref name="ifFalse"/>.</summary>
    static abstract TVector Select(TVector mask, TVector ifTrue, TVector ifFalse);
    /// <summary>The lanes as binary32, added in floating point (round to nearest even), back as bits.</summary>
    static abstract TVector AddAsSingle(TVector left, TVector right);
    static abstract TVector SubtractAsSingle(TVector left, TVector right);
    /// <summary>The lanes as binary32, multiplied in floating point (round to nearest even), back as bits.</summary>
    static abstract TVector MultiplyAsSingle(TVector left, TVector right);
    /// <summary>The lanes as binary32, divided in floating point (correctly rounded), back as bits.</summary>
    static abstract TVector DivideAsSingle(TVector left, TVector right);
    /// <summary>The lanes as binary32, their square roots (correctly rounded), back as bits.</summary>
    static abstract TVector SqrtAsSingle(TVector value);
    /// <summary>Whether any lane is non-zero (for masks: whether any lane is set).</summary>
    static abstract bool AnyNonZero(TVector value);
}

internal readonly unsafe struct Lanes512 : IUIntLanes<Vector512<uint>>
{
    public static int Count => Vector512<uint>.Count;
    public static Vector512<uint> Load(uint* source) => Vector512.Load(source);
    public static void Store(Vector512<uint> value, uint* destination) => value.Store(destination);
    public static Vector512<uint> LoadWidening(ushort* source) => Vector512.WidenLower(Vector256.Load(source).ToVector512Unsafe());
    public static void StoreNarrowing(Vector512<uint> value, ushort* destination) => Vector512.Narrow(value, value).GetLower().Store(destination);
    public static Vector512<uint> Splat(uint value) => Vector512.Create(value);
    public static Vector512<uint> Add(Vector512<uint> left, Vector512<uint> right) => left + right;
    public static Vector512<uint> Subtract(Vector512<uint> left, Vector512<uint> right) => left - right;
    public static Vector512<uint> And(Vector512<uint> left, Vector512<uint> right) => left & right;
    public static Vector512<uint> Or(Vector512<uint> left, Vector512<uint> right) => left | right;
    public static Vector512<uint> ShiftLeft(Vector512<uint> value, int count) => value << count;
    public static Vector512<uint> ShiftRight(Vector512<uint> value, int count) => value >>> count;
    public static Vector512<uint> GreaterThan(Vector512<uint> left, Vector512<uint> right) => Vector512.GreaterThan(left, right);
    public static Vector512<uint> Select(Vector512<uint> mask, Vector512<uint> ifTrue, Vector512<uint> ifFalse) => Vector512.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector512<uint> AddAsSingle(Vector512<uint> left, Vector512<uint> right) => (left.AsSingle() + right.AsSingle()).AsUInt32();
    public static Vector512<uint> SubtractAsSingle(Vector512<uint> left, Vector512<uint> right) => (left.AsSingle() - right.AsSingle()).AsUInt32();
    public static Vector512<uint> MultiplyAsSingle(Vector512<uint> left, Vector512<uint> right) => (left.AsSingle() * right.AsSingle()).AsUInt32();
    public static Vector512<uint> DivideAsSingle(Vector512<uint> left, Vector512<uint> right) => (left.AsSingle() / right.AsSingle()).AsUInt32();
    public static Vector512<uint> SqrtAsSingle(Vector512<uint> value) => Vector512.Sqrt(value.AsSingle()).AsUInt32();
    public static bool AnyNonZero(Vector512<uint> value) => value != Vector512<uint>.Zero;
}

internal readonly unsafe struct Lanes256 : IUIntLanes<Vector256<uint>>
{
    public static int Count => Vector256<uint>.Count;
    public static Vector256<uint> Load(uint* source) => Vector256.Load(source);
    public static void Store(Vector256<uint> value, uint* destination) => value.Store(destination);
    public static Vector256<uint> LoadWidening(ushort* source) => Vector256.WidenLower(Vector128.Load(source).ToVector256Unsafe());
    public static void StoreNarrowing(Vector256<uint> value, ushort* destination) => Vector256.Narrow(value, value).GetLower().Store(destination);
    public static Vector256<uint> Splat(uint value) => Vector256.Create(value);
    public static Vector256<uint> Add(Vector256<uint> left, Vector256<uint> right) => left + right;
    public static Vector256<uint> Subtract(Vector256<uint> left, Vector256<uint> right) => left - right;
    public static Vector256<uint> And(Vector256<uint> left, Vector256<uint> right) => left & right;
    public static Vector256<uint> Or(Vector256<uint> left, Vector256<uint> right) => left | right;
    public static Vector256<uint> ShiftLeft(Vector256<uint> value, int count) => value << count;
    public static Vector256<uint> ShiftRight(Vector256<uint> value, int count) => value >>> count;
    public static Vector256<uint> GreaterThan(Vector256<uint> left, Vector256<uint> right) => Vector256.GreaterThan(left, right);
    public static Vector256<uint> Select(Vector256<uint> mask, Vector256<uint> ifTrue, Vector256<uint> ifFalse) => Vector256.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector256<uint> AddAsSingle(Vector256<uint> left, Vector256<uint> right) => (left.AsSingle() + right.AsSingle()).AsUInt32();
    public static Vector256<uint> SubtractAsSingle(Vector256<uint> left, Vector256<uint> right) => (left.AsSingle() - right.AsSingle()).AsUInt32();
    public static Vector256<uint> MultiplyAsSingle(Vector256<uint> left, Vector256<uint> right) => (left.AsSingle() * right.AsSingle()).AsUInt32();
    public static Vector256<uint> DivideAsSingle(Vector256<uint> left, Vector256<uint> right) => (left.AsSingle() / right.AsSingle()).AsUInt32();
    public static Vector256<uint> SqrtAsSingle(Vector256<uint> value) => Vector256.Sqrt(value.AsSingle()).AsUInt32();
    public static bool AnyNonZero(Vector256<uint> value) => value != Vector256<uint>.Zero;
}

internal readonly unsafe struct Lanes128 : IUIntLanes<Vector128<uint>>
{
    public static int Count => Vector128<uint>.Count;
    public static Vector128<uint> Load(uint* source) => Vector128.Load(source);
    public static void Store(Vector128<uint> value, uint* destination) => value.Store(destination);
    public static Vector128<uint> LoadWidening(ushort* source) => Vector128.WidenLower(Vector64.Load(source).ToVector128Unsafe());
    public static void StoreNarrowing(Vector128<uint> value, ushort* destination) => Vector128.Narrow(value, value).GetLower().Store(destination);
    public static Vector128<uint> Splat(uint value) => Vector128.Create(value);
    public static Vector128<uint> Add(Vector128<uint> left, Vector128<uint> right) => left + right;
    public static Vector128<uint> Subtract(Vector128<uint> left, Vector128<uint> right) => left - right;
    public static Vector128<uint> And(Vector128<uint> left, Vector128<uint> right) => left & right;
    public static Vector128<uint> Or(Vector128<uint> left, Vector128<uint> right) => left | right;
    public static Vector128<uint> ShiftLeft(Vector128<uint> value, int count) => value << count;
    public static Vector128<uint> ShiftRight(Vector128<uint> value, int count) => value >>> count;
    public static Vector128<uint> GreaterThan(Vector128<uint> left, Vector128<uint> right) => Vector128.GreaterThan(left, right);
    public static Vector128<uint> Select(Vector128<uint> mask, Vector128<uint> ifTrue, Vector128<uint> ifFalse) => Vector128.ConditionalSelect(mask, ifTrue, ifFalse);
    public static Vector128<uint> AddAsSingle(Vector128<uint> left, Vector128<uint> right) => (left.AsSingle() + right.AsSingle()).AsUInt32();
    public static Vector128<uint> SubtractAsSingle(Vector128<uint> left, Vector128<uint> right) => (left.AsSingle() - right.AsSingle()).AsUInt32();
    public static Vector128<uint> MultiplyAsSingle(Vector128<uint> left, Vector128<uint> right) => (left.AsSingle() * right.AsSingle()).AsUInt32();
    public static Vector128<uint> DivideAsSingle(Vector128<uint> left, Vector128<uint> right) => (left.AsSingle() / right.AsSingle()).AsUInt32();
    public static Vector128<uint> SqrtAsSingle(Vector128<uint> value) => Vector128.Sqrt(value.AsSingle()).AsUInt32();
    public static bool AnyNonZero(Vector128<uint> value) => value != Vector128<uint>.Zero;
}
