using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/optimizer_steps.cl</c> in ILGPU C#: the fused AdamW and SGD steps of mixed-precision training. One pass
/// reads the gradient, the Float32 master weights and the state once, and writes the weights, the state and the
/// low-precision working copy once.
/// </summary>
/// <remarks>
/// Math: per element, in binary32, in exactly the order of <c>AdamWConstants</c> and <c>SgdConstants</c> and of the .cl
/// code, every operation rounded to nearest even and none fused (the <see cref="Dialect"/> words), so these kernels
/// compute the CPU's and CUDA's bits for every result that is not NaN. The host derives every constant in double and
/// passes it as binary32 bits. A NaN or Inf gradient propagates, as in PyTorch; callers that must not apply such a
/// step check first (<see cref="Unscale"/>'s find_non_finite kernels).
/// Names: <c>&lt;optimizer&gt;_&lt;gradient&gt;_to_&lt;working&gt;</c>; one generic method per optimizer, instantiated
/// with the gradient's bits and format and the working copy (<see cref="NoCopy"/> never touches its buffer, which the
/// host then fills with any buffer).
/// Launch and bounds: as <see cref="Precision"/>, a grid-stride loop checking <c>i &lt; count</c>; every buffer holds
/// count elements.
/// </remarks>
internal static class OptimizerSteps
{
    /// <summary>
    /// <c>g = G * s; m = b1 * m + c1 * g; v = b2 * v + c2 * (g * g);
    /// p = p * decay - step_size * (m / (sqrt(v) * inv_sqrt_c2 + eps))</c>.
    /// </summary>
    [Entry("adamw_f32_to_none", typeof(uint), typeof(F32), typeof(NoCopy))]
    [Entry("adamw_f32_to_f16", typeof(uint), typeof(F32), typeof(Copy<F16>))]
    [Entry("adamw_f32_to_bf16", typeof(uint), typeof(F32), typeof(Copy<BF16>))]
    [Entry("adamw_f16_to_none", typeof(ushort), typeof(F16), typeof(NoCopy))]
    [Entry("adamw_f16_to_f16", typeof(ushort), typeof(F16), typeof(Copy<F16>))]
    [Entry("adamw_f16_to_bf16", typeof(ushort), typeof(F16), typeof(Copy<BF16>))]
    [Entry("adamw_bf16_to_none", typeof(ushort), typeof(BF16), typeof(NoCopy))]
    [Entry("adamw_bf16_to_f16", typeof(ushort), typeof(BF16), typeof(Copy<F16>))]
    [Entry("adamw_bf16_to_bf16", typeof(ushort), typeof(BF16), typeof(Copy<BF16>))]
    public static void AdamW<TGrad, TGradFormat, TWorking>(
        ArrayView<float> p, ArrayView<TGrad> grad, ArrayView<float> m, ArrayView<float> v, ArrayView<ushort> working, long count,
        uint s_bits, uint b1_bits, uint c1_bits, uint b2_bits, uint c2_bits, uint decay_bits, uint step_size_bits,
        uint inv_sqrt_c2_bits, uint eps_bits)
        where TGrad : unmanaged
        where TGradFormat : struct, IFloatFormat<TGrad>
        where TWorking : struct, IWorkingCopy
    {
        float s = Dialect.AsFloat(s_bits), b1 = Dialect.AsFloat(b1_bits), c1 = Dialect.AsFloat(c1_bits);
        float b2 = Dialect.AsFloat(b2_bits), c2 = Dialect.AsFloat(c2_bits), decay = Dialect.AsFloat(decay_bits);
        float stepSize = Dialect.AsFloat(step_size_bits), invSqrtC2 = Dialect.AsFloat(inv_sqrt_c2_bits);
        float eps = Dialect.AsFloat(eps_bits);
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride)
        {
            float g = Dialect.MulRn(default(TGradFormat).Widen(grad[i]), s);
            float mi = Dialect.AddRn(Dialect.MulRn(b1, m[i]), Dialect.MulRn(c1, g));
            float vi = Dialect.AddRn(Dialect.MulRn(b2, v[i]), Dialect.MulRn(c2, Dialect.MulRn(g, g)));
            float denom = Dialect.AddRn(Dialect.MulRn(Dialect.SqrtRn(vi), invSqrtC2), eps);
            float pi = Dialect.AddRn(Dialect.MulRn(p[i], decay), -Dialect.MulRn(stepSize, Dialect.DivRn(mi, denom)));
            m[i] = mi;
            v[i] = vi;
            p[i] = pi;
            default(TWorking).Store(working, i, pi);
        }
    }

    /// <summary>
    /// <c>g = G * s; if (wd != 0) g = g + wd * p; b = first ? g : mu * b + (1 - dampening) * g;
    /// p = p - lr * (nesterov ? g + mu * b : b)</c>. flags: bit 0 Nesterov, bit 1 the first step (b is seeded, never read).
    /// </summary>
    /// <remarks>Weight decay is tested on its bits, as the .cl does: a wd of -0 still adds its (signed zero) term.</remarks>
    [Entry("sgd_f32_to_none", typeof(uint), typeof(F32), typeof(NoCopy))]
    [Entry("sgd_f32_to_f16", typeof(uint), typeof(F32), typeof(Copy<F16>))]
    [Entry("sgd_f32_to_bf16", typeof(uint), typeof(F32), typeof(Copy<BF16>))]
    [Entry("sgd_f16_to_none", typeof(ushort), typeof(F16), typeof(NoCopy))]
    [Entry("sgd_f16_to_f16", typeof(ushort), typeof(F16), typeof(Copy<F16>))]
    [Entry("sgd_f16_to_bf16", typeof(ushort), typeof(F16), typeof(Copy<BF16>))]
    [Entry("sgd_bf16_to_none", typeof(ushort), typeof(BF16), typeof(NoCopy))]
    [Entry("sgd_bf16_to_f16", typeof(ushort), typeof(BF16), typeof(Copy<F16>))]
    [Entry("sgd_bf16_to_bf16", typeof(ushort), typeof(BF16), typeof(Copy<BF16>))]
    public static void Sgd<TGrad, TGradFormat, TWorking>(
        ArrayView<float> p, ArrayView<TGrad> grad, ArrayView<float> b, ArrayView<ushort> working, long count,
        uint s_bits, uint mu_bits, uint one_minus_dampening_bits, uint wd_bits, uint lr_bits, uint flags)
        where TGrad : unmanaged
        where TGradFormat : struct, IFloatFormat<TGrad>
        where TWorking : struct, IWorkingCopy
    {
        float s = Dialect.AsFloat(s_bits), mu = Dialect.AsFloat(mu_bits), keep = Dialect.AsFloat(one_minus_dampening_bits);
        float wd = Dialect.AsFloat(wd_bits), lr = Dialect.AsFloat(lr_bits);
        for (long i = Dialect.GlobalIndex; i < count; i += Dialect.GridStride)
        {
            float pi = p[i];
            float g = Dialect.MulRn(default(TGradFormat).Widen(grad[i]), s);
            if (wd_bits != 0u) g = Dialect.AddRn(g, Dialect.MulRn(wd, pi));
            float bi = (flags & 2u) != 0u ? g : Dialect.AddRn(Dialect.MulRn(mu, b[i]), Dialect.MulRn(keep, g));
            float update = (flags & 1u) != 0u ? Dialect.AddRn(g, Dialect.MulRn(mu, bi)) : bi;
            float next = Dialect.AddRn(pi, -Dialect.MulRn(lr, update));
            b[i] = bi;
            p[i] = next;
            default(TWorking).Store(working, i, next);
        }
    }
}

/// <summary>What a step writes to its low-precision working copy (<c>STORE_none</c>, <c>STORE_f16</c>, <c>STORE_bf16</c>).</summary>
internal interface IWorkingCopy
{
    /// <summary>Writes the new parameter <paramref name="value"/> at <paramref name="i"/>, or nothing.</summary>
    void Store(ArrayView<ushort> working, long i, float value);
}

/// <summary>No working copy: the buffer is never touched.</summary>
internal readonly struct NoCopy : IWorkingCopy
{
    public void Store(ArrayView<ushort> working, long i, float value) { }
}

/// <summary>A working copy in <typeparamref name="TFormat"/>, rounded as convert.h rounds (nearest even, NaN kept).</summary>
internal readonly struct Copy<TFormat> : IWorkingCopy where TFormat : struct, IFloatFormat<ushort>
{
    public void Store(ArrayView<ushort> working, long i, float value) => working[i] = default(TFormat).Narrow(value);
}
