using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using NativeTensor.Runtime;

namespace NativeTensor.Cpu;

/// <summary>
/// The fused optimizer steps on the CPU: AdamW and SGD with momentum, in place, one pass over the gradient, the Float32
/// master weights and the state, writing the working copy in the same pass. The arithmetic is the binary32 sequence of
/// <see cref="AdamWConstants"/> and <see cref="SgdConstants"/> (the JIT never fuses a multiply and an add), lane for
/// lane the same in the vector and scalar paths, so every width gives the same bits as <c>kernels/optimizer_steps.cl</c>
/// for every result that is not NaN (a NaN's payload and sign depend on the hardware).
/// </summary>
/// <remarks>
/// Each element is read and written exactly once: the step is in place, so running it twice would apply it twice, and
/// it declares <see cref="SimdTail.Once"/> to <see cref="SimdDriver"/> (narrower vectors, then the scalar rule).
/// </remarks>
internal static unsafe class OptimizerStepKernels
{
    /// <summary>One AdamW step over <paramref name="count"/> elements (pointers already leased and range-checked); <paramref name="working"/> may be null.</summary>
    public static void AdamW(byte* parameters, byte* gradient, DType gradientType, byte* first, byte* second, byte* working, DType workingType,
        long count, AdamWConstants constants, SimdWidth width) =>
        Run<AdamWRule, AdamWConstants>(parameters, gradient, gradientType, first, second, working, workingType, count, constants, width);

    /// <summary>One SGD-with-momentum step; <paramref name="buffer"/> is the momentum buffer.</summary>
    public static void Sgd(byte* parameters, byte* gradient, DType gradientType, byte* buffer, byte* working, DType workingType,
        long count, SgdConstants constants, SimdWidth width) =>
        Run<SgdRule, SgdConstants>(parameters, gradient, gradientType, buffer, null, working, workingType, count, constants, width);

    /// <summary>Bytes one element moves: parameters and state read and written, the gradient read, the working copy written.</summary>
    private static long BytesPerElement(DType gradient, bool second, bool working) =>
        (second ? 24 : 16) + gradient.SizeOf() + (working ? 2 : 0);

    private static void Run<TRule, TConstants>(byte* parameters, byte* gradient, DType gradientType, byte* first, byte* second,
        byte* working, DType workingType, long count, TConstants constants, SimdWidth width)
        where TRule : IRule<TConstants> where TConstants : struct
    {
        var step = new Pointers((float*)parameters, gradient, (float*)first, (float*)second, working);
        long bytes = count * BytesPerElement(gradientType, second != null, working != null);
        int parts = CpuParallel.Parts(bytes, BlockCopy.ParallelThreshold);
        DType? workingCopy = working == null ? null : workingType;
        CpuParallel.For(parts, count, (start, end) => Gradients<TRule, TConstants>(step, gradientType, workingCopy, start, end, constants, width));
    }

    /// <summary>The buffers of one step as addresses (a struct of pointers, so the lambdas that split the work can carry it).</summary>
    private readonly struct Pointers(float* parameters, byte* gradient, float* first, float* second, byte* working)
    {
        public readonly float* Parameters = parameters;
        public readonly byte* Gradient = gradient;
        public readonly float* First = first;
        public readonly float* Second = second;
        public readonly byte* Working = working;
    }

    private static void Gradients<TRule, TConstants>(Pointers step, DType gradient, DType? working, long start, long end, TConstants constants, SimdWidth width)
        where TRule : IRule<TConstants> where TConstants : struct
    {
        switch (gradient)
        {
            case DType.Float32: Workings<TRule, TConstants, SingleGradient>(step, working, start, end, constants, width); break;
            case DType.Float16: Workings<TRule, TConstants, HalfGradient>(step, working, start, end, constants, width); break;
            case DType.BFloat16: Workings<TRule, TConstants, BFloat16Gradient>(step, working, start, end, constants, width); break;
            default: throw new ArgumentException($"no optimizer step for a {gradient} gradient", nameof(gradient));
        }
    }

    private static void Workings<TRule, TConstants, TGradient>(Pointers step, DType? working, long start, long end, TConstants constants, SimdWidth width)
        where TRule : IRule<TConstants> where TConstants : struct where TGradient : IGradient
    {
        switch (working)
        {
            case null: SimdDriver.Run(new Stepping<TRule, TConstants, TGradient, NoWorking>(step, constants), start, end, width); break;
            case DType.Float16: SimdDriver.Run(new Stepping<TRule, TConstants, TGradient, HalfWorking>(step, constants), start, end, width); break;
            case DType.BFloat16: SimdDriver.Run(new Stepping<TRule, TConstants, TGradient, BFloat16Working>(step, constants), start, end, width); break;
            default: throw new ArgumentException($"no optimizer step writing a {working} working copy", nameof(working));
        }
    }

    /// <summary>One step over the buffers as the driver's operator: one Float32 element per lane, in place.</summary>
    private readonly struct Stepping<TRule, TConstants, TGradient, TWorking>(Pointers step, TConstants constants) : ISimdOp
        where TRule : IRule<TConstants> where TConstants : struct where TGradient : IGradient where TWorking : IWorking
    {
        public static SimdTail Tail => SimdTail.Once;
        /// <summary>Two: AdamW's nine constants and a body with conversions at both ends spill at four (AVX2).</summary>
        public static int VectorsPerTurn => 2;

        /// <summary>
        /// Inlined and given a copy of the constants, so no call takes this struct's address (its pointers stay in
        /// registers); the rule's Splat is not inlined, so the splatted lanes stay in memory, where the body reads them as
        /// operands: promoted into registers, nine of AVX2's sixteen, they made the body spill and SGD run at half speed.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Splat<TLanes, TVector>(out SimdConstants<TVector> c) where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            TConstants copy = constants;
            TRule.Splat<TLanes, TVector>(copy, out c);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Vector<TLanes, TVector>(long i, in SimdConstants<TVector> c, ref TVector flags) where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            TVector parameter = TLanes.Load((uint*)(step.Parameters + i));
            TVector first = TLanes.Load((uint*)(step.First + i));
            TVector second = step.Second == null ? default : TLanes.Load((uint*)(step.Second + i));
            TRule.Vector<TLanes, TVector>(TGradient.Load<TLanes, TVector>(step.Gradient, i), ref parameter, ref first, ref second, c);
            TLanes.Store(parameter, (uint*)(step.Parameters + i));
            TLanes.Store(first, (uint*)(step.First + i));
            if (step.Second != null) TLanes.Store(second, (uint*)(step.Second + i));
            TWorking.Store<TLanes, TVector>(parameter, step.Working, i);
        }

        public bool Scalar(long start, long end)
        {
            for (long i = start; i < end; i++)
            {
                float parameter = step.Parameters[i];
                float first = step.First[i];
                float second = step.Second == null ? 0 : step.Second[i];
                TRule.Scalar(TGradient.Load(step.Gradient, i), ref parameter, ref first, ref second, constants);
                step.Parameters[i] = parameter;
                step.First[i] = first;
                if (step.Second != null) step.Second[i] = second;
                TWorking.Store(BitConverter.SingleToUInt32Bits(parameter), step.Working, i);
            }
            return false;
        }

        public void Ahead(long i, long count) { }
    }

    /// <summary>One optimizer's per-element rule: the vector form and the scalar form compute the same roundings.</summary>
    private interface IRule<TConstants> where TConstants : struct
    {
        static abstract void Splat<TLanes, TVector>(in TConstants constants, out SimdConstants<TVector> splat)
            where TLanes : IUIntLanes<TVector> where TVector : struct;
        static abstract void Vector<TLanes, TVector>(TVector gradient, ref TVector parameter, ref TVector first, ref TVector second, in SimdConstants<TVector> c)
            where TLanes : IUIntLanes<TVector> where TVector : struct;
        static abstract void Scalar(float gradient, ref float parameter, ref float first, ref float second, in TConstants c);
    }

    private static TVector Lanes<TLanes, TVector>(float value) where TLanes : IUIntLanes<TVector> where TVector : struct =>
        TLanes.Splat(BitConverter.SingleToUInt32Bits(value));

    /// <summary>AdamW in the order of <see cref="AdamWConstants"/>; first and second are the moments.</summary>
    private readonly struct AdamWRule : IRule<AdamWConstants>
    {
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static void Splat<TLanes, TVector>(in AdamWConstants k, out SimdConstants<TVector> c)
            where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            Unsafe.SkipInit(out c);
            c.C0 = Lanes<TLanes, TVector>(k.InverseScale);
            c.C1 = Lanes<TLanes, TVector>(k.Beta1);
            c.C2 = Lanes<TLanes, TVector>(k.OneMinusBeta1);
            c.C3 = Lanes<TLanes, TVector>(k.Beta2);
            c.C4 = Lanes<TLanes, TVector>(k.OneMinusBeta2);
            c.C5 = Lanes<TLanes, TVector>(k.Decay);
            c.C6 = Lanes<TLanes, TVector>(k.StepSize);
            c.C7 = Lanes<TLanes, TVector>(k.InverseSqrtCorrection2);
            c.C8 = Lanes<TLanes, TVector>(k.Epsilon);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Vector<TLanes, TVector>(TVector gradient, ref TVector p, ref TVector m, ref TVector v, in SimdConstants<TVector> c)
            where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            TVector g = TLanes.MultiplyAsSingle(gradient, c.C0);
            m = TLanes.AddAsSingle(TLanes.MultiplyAsSingle(c.C1, m), TLanes.MultiplyAsSingle(c.C2, g));
            v = TLanes.AddAsSingle(TLanes.MultiplyAsSingle(c.C3, v), TLanes.MultiplyAsSingle(c.C4, TLanes.MultiplyAsSingle(g, g)));
            TVector denominator = TLanes.AddAsSingle(TLanes.MultiplyAsSingle(TLanes.SqrtAsSingle(v), c.C7), c.C8);
            p = TLanes.SubtractAsSingle(TLanes.MultiplyAsSingle(p, c.C5), TLanes.MultiplyAsSingle(c.C6, TLanes.DivideAsSingle(m, denominator)));
        }

        public static void Scalar(float gradient, ref float p, ref float m, ref float v, in AdamWConstants k)
        {
            float g = gradient * k.InverseScale;
            m = k.Beta1 * m + k.OneMinusBeta1 * g;
            v = k.Beta2 * v + k.OneMinusBeta2 * (g * g);
            float denominator = MathF.Sqrt(v) * k.InverseSqrtCorrection2 + k.Epsilon;
            p = p * k.Decay - k.StepSize * (m / denominator);
        }
    }

    /// <summary>SGD with momentum in the order of <see cref="SgdConstants"/>; first is the momentum buffer, second unused.</summary>
    private readonly struct SgdRule : IRule<SgdConstants>
    {
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static void Splat<TLanes, TVector>(in SgdConstants k, out SimdConstants<TVector> c)
            where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            Unsafe.SkipInit(out c);
            c.C0 = Lanes<TLanes, TVector>(k.InverseScale);
            c.C1 = Lanes<TLanes, TVector>(k.Momentum);
            c.C2 = Lanes<TLanes, TVector>(k.OneMinusDampening);
            c.C3 = Lanes<TLanes, TVector>(k.WeightDecay);
            c.C4 = Lanes<TLanes, TVector>(k.LearningRate);
            // Flags as all-ones or zero lanes: C5 weight decay on, C6 Nesterov, C7 first step.
            c.C5 = TLanes.Splat(k.WeightDecay != 0 ? uint.MaxValue : 0);
            c.C6 = TLanes.Splat(k.Nesterov ? uint.MaxValue : 0);
            c.C7 = TLanes.Splat(k.First ? uint.MaxValue : 0);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Vector<TLanes, TVector>(TVector gradient, ref TVector p, ref TVector b, ref TVector unused, in SimdConstants<TVector> c)
            where TLanes : IUIntLanes<TVector> where TVector : struct
        {
            TVector g = TLanes.MultiplyAsSingle(gradient, c.C0);
            g = TLanes.Select(c.C5, TLanes.AddAsSingle(g, TLanes.MultiplyAsSingle(c.C3, p)), g);
            b = TLanes.Select(c.C7, g, TLanes.AddAsSingle(TLanes.MultiplyAsSingle(c.C1, b), TLanes.MultiplyAsSingle(c.C2, g)));
            TVector update = TLanes.Select(c.C6, TLanes.AddAsSingle(g, TLanes.MultiplyAsSingle(c.C1, b)), b);
            p = TLanes.SubtractAsSingle(p, TLanes.MultiplyAsSingle(c.C4, update));
        }

        public static void Scalar(float gradient, ref float p, ref float b, ref float unused, in SgdConstants k)
        {
            float g = gradient * k.InverseScale;
            if (k.WeightDecay != 0) g += k.WeightDecay * p;
            b = k.First ? g : k.Momentum * b + k.OneMinusDampening * g;
            float update = k.Nesterov ? g + k.Momentum * b : b;
            p -= k.LearningRate * update;
        }
    }

    /// <summary>How a gradient dtype is read as binary32 (widening is exact).</summary>
    private interface IGradient
    {
        static abstract TVector Load<TLanes, TVector>(byte* gradient, long i) where TLanes : IUIntLanes<TVector> where TVector : struct;
        static abstract float Load(byte* gradient, long i);
    }

    private readonly struct SingleGradient : IGradient
    {
        public static TVector Load<TLanes, TVector>(byte* g, long i) where TLanes : IUIntLanes<TVector> where TVector : struct => TLanes.Load((uint*)g + i);
        public static float Load(byte* g, long i) => ((float*)g)[i];
    }

    private readonly struct HalfGradient : IGradient
    {
        public static TVector Load<TLanes, TVector>(byte* g, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            PrecisionKernels.HalfToSingle<TLanes, TVector>(TLanes.LoadWidening((ushort*)g + i));
        public static float Load(byte* g, long i) => BitConverter.UInt32BitsToSingle(PrecisionKernels.HalfToSingle(((ushort*)g)[i]));
    }

    private readonly struct BFloat16Gradient : IGradient
    {
        public static TVector Load<TLanes, TVector>(byte* g, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.ShiftLeft(TLanes.LoadWidening((ushort*)g + i), 16);
        public static float Load(byte* g, long i) => BitConverter.UInt32BitsToSingle((uint)((ushort*)g)[i] << 16);
    }

    /// <summary>How the new master weights are written to the working copy, rounded as <c>Precision.Convert</c> rounds.</summary>
    private interface IWorking
    {
        static abstract void Store<TLanes, TVector>(TVector bits, byte* working, long i) where TLanes : IUIntLanes<TVector> where TVector : struct;
        static abstract void Store(uint bits, byte* working, long i);
    }

    private readonly struct NoWorking : IWorking
    {
        public static void Store<TLanes, TVector>(TVector bits, byte* working, long i) where TLanes : IUIntLanes<TVector> where TVector : struct { }
        public static void Store(uint bits, byte* working, long i) { }
    }

    private readonly struct HalfWorking : IWorking
    {
        public static void Store<TLanes, TVector>(TVector bits, byte* w, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.StoreNarrowing(PrecisionKernels.SingleToHalf<TLanes, TVector>(bits), (ushort*)w + i);
        public static void Store(uint bits, byte* w, long i) => ((ushort*)w)[i] = PrecisionKernels.SingleToHalf(bits);
    }

    private readonly struct BFloat16Working : IWorking
    {
        public static void Store<TLanes, TVector>(TVector bits, byte* w, long i) where TLanes : IUIntLanes<TVector> where TVector : struct =>
            TLanes.StoreNarrowing(PrecisionKernels.SingleToBFloat16<TLanes, TVector>(bits), (ushort*)w + i);
        public static void Store(uint bits, byte* w, long i) => ((ushort*)w)[i] = BFloat16.RoundBits(bits);
    }
}
