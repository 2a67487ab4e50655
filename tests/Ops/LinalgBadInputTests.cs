using NativeTensor.Cases;
using NativeTensor.Tests.Infrastructure;
using static NativeTensor.Tests.Infrastructure.TestTensors;

namespace NativeTensor.Tests.Ops;

/// <summary>
/// Every rule <see cref="Linalg"/> enforces: each bad argument gets its exception, naming the argument, before anything
/// is written (every tensor keeps its bytes). Validation happens before dispatch, so the CPU suffices.
/// </summary>
public sealed class LinalgBadInputTests
{
    private sealed class Set : IDisposable
    {
        /// <summary>A [3, 4] and B [4, 5] (Float32), C [3, 5]; Square [4, 4] for aliasing, the rest one rule each.</summary>
        public readonly Tensor A, B, C, Square, SquareC, HalfC, WrongC, Vector, Cube, Ints, Longs, Elsewhere, CElsewhere, BHalf, Huge;

        public Set()
        {
            var random = new Random(7);
            Device cpu = Device.Cpu;
            Tensor Floats(long[] shape, Device? device = null) =>
                FromBytes(DType.Float32, shape, device ?? cpu, LinalgData.Bytes(LinalgData.Floats(random, shape.Aggregate(1L, (x, y) => x * y))));
            A = Floats([3, 4]);
            B = Floats([4, 5]);
            C = Floats([3, 5]);
            Square = Floats([4, 4]);
            SquareC = Floats([4, 4]);
            HalfC = FromBytes(DType.Float16, [3, 5], cpu, RandomBytes(random, 30));
            WrongC = Floats([5, 3]);
            Vector = Floats([4]);
            Cube = Floats([2, 2, 2]);
            Ints = FromBytes(DType.Int32, [4, 5], cpu, RandomBytes(random, 80));
            Longs = FromBytes(DType.Int64, [3, 4], cpu, RandomBytes(random, 96));
            Elsewhere = Floats([4, 5], Backends.CpuScalar);
            CElsewhere = Floats([3, 5], Backends.CpuScalar);
            BHalf = FromBytes(DType.Float16, [4, 5], cpu, LinalgData.Matrix(random, DType.Float16, 20));
            Huge = Tensor.Empty(DType.Float32, [1L << 31, 0], cpu);   // no elements, so nothing to allocate
        }

        public Tensor[] All => [A, B, C, Square, SquareC, HalfC, WrongC, Vector, Cube, Ints, Longs, Elsewhere, CElsewhere, BHalf, Huge];

        public void Dispose()
        {
            foreach (Tensor t in All) t.Dispose();
        }
    }

    public static TheoryData<string, Type, string> Rules() => new()
    {
        { "matmul: null a", typeof(ArgumentNullException), "a" },
        { "matmul: null b", typeof(ArgumentNullException), "b" },
        { "matmul: disposed a", typeof(ObjectDisposedException), "" },
        { "matmul: disposed b", typeof(ObjectDisposedException), "" },
        { "matmul: disposed c", typeof(ObjectDisposedException), "" },
        { "matmul: a rank 1", typeof(ArgumentException), "a" },
        { "matmul: b rank 3", typeof(ArgumentException), "b" },
        { "matmul: a Int64", typeof(ArgumentException), "a" },
        { "matmul: b Int32", typeof(ArgumentException), "b" },
        { "matmul: a dimension of 2^31", typeof(ArgumentException), "a" },
        { "matmul: b dimension of 2^31", typeof(ArgumentException), "b" },
        { "matmul: b on another device", typeof(ArgumentException), "b" },
        { "matmul: inner dimensions differ", typeof(ArgumentException), "b" },
        { "matmul: inner dimensions differ once transposed", typeof(ArgumentException), "b" },
        { "matmul: c shape", typeof(ArgumentException), "c" },
        { "matmul: c Float16", typeof(ArgumentException), "c" },
        { "matmul: c on another device", typeof(ArgumentException), "c" },
        { "matmul: c is a", typeof(ArgumentException), "c" },
        { "matmul: c is b", typeof(ArgumentException), "c" },
        { "matmul: beta without c", typeof(ArgumentException), "c" },
        { "matmul: alpha NaN", typeof(ArgumentOutOfRangeException), "alpha" },
        { "matmul: alpha -Inf", typeof(ArgumentOutOfRangeException), "alpha" },
        { "matmul: beta NaN", typeof(ArgumentOutOfRangeException), "beta" },
        { "matmul: beta +Inf", typeof(ArgumentOutOfRangeException), "beta" },
        { "syrk: null a", typeof(ArgumentNullException), "a" },
        { "syrk: disposed a", typeof(ObjectDisposedException), "" },
        { "syrk: disposed c", typeof(ObjectDisposedException), "" },
        { "syrk: a rank 1", typeof(ArgumentException), "a" },
        { "syrk: a Int32", typeof(ArgumentException), "a" },
        { "syrk: a dimension of 2^31", typeof(ArgumentException), "a" },
        { "syrk: c shape", typeof(ArgumentException), "c" },
        { "syrk: c not square", typeof(ArgumentException), "c" },
        { "syrk: c Float16", typeof(ArgumentException), "c" },
        { "syrk: c on another device", typeof(ArgumentException), "c" },
        { "syrk: c is a", typeof(ArgumentException), "c" },
        { "syrk: beta without c", typeof(ArgumentException), "c" },
        { "syrk: alpha +Inf", typeof(ArgumentOutOfRangeException), "alpha" },
        { "syrk: beta NaN", typeof(ArgumentOutOfRangeException), "beta" },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void Bad_arguments_are_refused_before_anything_is_written(string rule, Type exception, string parameter)
    {
        using var s = new Set();
        byte[][] before = [.. s.All.Select(Bytes)];
        Action call = rule switch
        {
            "matmul: null a" => () => Linalg.MatMul(null!, s.B, c: s.C),
            "matmul: null b" => () => Linalg.MatMul(s.A, null!, c: s.C),
            "matmul: disposed a" => () => { s.A.Dispose(); Linalg.MatMul(s.A, s.B, c: s.C); },
            "matmul: disposed b" => () => { s.B.Dispose(); Linalg.MatMul(s.A, s.B, c: s.C); },
            "matmul: disposed c" => () => { s.WrongC.Dispose(); Linalg.MatMul(s.A, s.B, c: s.WrongC); },
            "matmul: a rank 1" => () => Linalg.MatMul(s.Vector, s.B, c: s.C),
            "matmul: b rank 3" => () => Linalg.MatMul(s.A, s.Cube, c: s.C),
            "matmul: a Int64" => () => Linalg.MatMul(s.Longs, s.B, c: s.C),
            "matmul: b Int32" => () => Linalg.MatMul(s.A, s.Ints, c: s.C),
            "matmul: a dimension of 2^31" => () => Linalg.MatMul(s.Huge, s.Huge, transposeB: true),
            "matmul: b dimension of 2^31" => () => Linalg.MatMul(s.A, s.Huge, transposeB: true),
            "matmul: b on another device" => () => Linalg.MatMul(s.A, s.Elsewhere, c: s.C),
            "matmul: inner dimensions differ" => () => Linalg.MatMul(s.A, s.C),
            "matmul: inner dimensions differ once transposed" => () => Linalg.MatMul(s.A, s.B, transposeA: true),
            "matmul: c shape" => () => Linalg.MatMul(s.A, s.B, c: s.WrongC),
            "matmul: c Float16" => () => Linalg.MatMul(s.A, s.BHalf, c: s.HalfC),
            "matmul: c on another device" => () => Linalg.MatMul(s.A, s.B, beta: 1, c: s.CElsewhere),
            "matmul: c is a" => () => Linalg.MatMul(s.Square, s.SquareC, c: s.Square),
            "matmul: c is b" => () => Linalg.MatMul(s.SquareC, s.Square, beta: 1, c: s.Square),
            "matmul: beta without c" => () => Linalg.MatMul(s.A, s.B, beta: 0.5f),
            "matmul: alpha NaN" => () => Linalg.MatMul(s.A, s.B, alpha: float.NaN, c: s.C),
            "matmul: alpha -Inf" => () => Linalg.MatMul(s.A, s.B, alpha: float.NegativeInfinity, c: s.C),
            "matmul: beta NaN" => () => Linalg.MatMul(s.A, s.B, beta: float.NaN, c: s.C),
            "matmul: beta +Inf" => () => Linalg.MatMul(s.A, s.B, beta: float.PositiveInfinity, c: s.C),
            "syrk: null a" => () => Linalg.Syrk(null!, c: s.SquareC),
            "syrk: disposed a" => () => { s.A.Dispose(); Linalg.Syrk(s.A, c: s.SquareC); },
            "syrk: disposed c" => () => { s.SquareC.Dispose(); Linalg.Syrk(s.A, c: s.SquareC); },
            "syrk: a rank 1" => () => Linalg.Syrk(s.Vector),
            "syrk: a Int32" => () => Linalg.Syrk(s.Ints),
            "syrk: a dimension of 2^31" => () => Linalg.Syrk(s.Huge),
            "syrk: c shape" => () => Linalg.Syrk(s.A, c: s.C),
            "syrk: c not square" => () => Linalg.Syrk(s.B, c: s.WrongC),
            "syrk: c Float16" => () => Linalg.Syrk(s.C, c: s.HalfC),
            "syrk: c on another device" => () => Linalg.Syrk(s.B, c: s.Elsewhere),
            "syrk: c is a" => () => Linalg.Syrk(s.Square, beta: 1, c: s.Square),
            "syrk: beta without c" => () => Linalg.Syrk(s.A, beta: -1),
            "syrk: alpha +Inf" => () => Linalg.Syrk(s.A, alpha: float.PositiveInfinity, c: s.SquareC),
            "syrk: beta NaN" => () => Linalg.Syrk(s.A, beta: float.NaN, c: s.SquareC),
            _ => throw new ArgumentException(rule),
        };
        Exception thrown = Assert.Throws(exception, call);
        if (parameter.Length > 0) Assert.Equal(parameter, Assert.IsAssignableFrom<ArgumentException>(thrown).ParamName);
        Assert.False(string.IsNullOrWhiteSpace(thrown.Message));
        for (int i = 0; i < before.Length; i++)
            if (!s.All[i].IsDisposed) BitExact(before[i], Bytes(s.All[i]), $"{rule}: tensor {i}");
    }
}
