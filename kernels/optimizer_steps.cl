/*
 * optimizer_steps.cl — fused optimizer steps for mixed-precision training: one pass reads the gradient, the Float32
 * master weights and the optimizer state once, and writes the master weights, the state and the low-precision working
 * copy once.
 *
 * Math:    AdamW (adamw_*) and SGD with momentum (sgd_*), per element, in binary32, in exactly the order of
 *          AdamWConstants and SgdConstants (src/Tensors/Runtime/StepConstants.cs), every operation rounded to nearest
 *          even and none fused (MUL_RN, ADD_RN, DIV_RN, SQRT_RN of dialect.h), so the CPU, CUDA and a correctly
 *          rounding OpenCL device compute the same bits for every result that is not NaN (NaN payloads and signs
 *          differ between CPUs and GPUs). The host derives every constant in double and passes it as binary32 bits
 *          (a uint): bias corrections included, so no kernel calls pow.
 *          AdamW:  g = G * s;  m = b1 * m + c1 * g;  v = b2 * v + c2 * (g * g);
 *                  p = p * decay - step_size * (m / (sqrt(v) * inv_sqrt_c2 + eps))
 *          SGD:    g = G * s;  if (wd != 0) g = g + wd * p;  b = first ? g : mu * b + (1 - dampening) * g;
 *                  p = p - lr * (nesterov ? g + mu * b : b)
 *          The working copy, when there is one, is the new p rounded as convert.h rounds (nearest even, NaN kept).
 *          A NaN or Inf gradient is not special here: it propagates, as in PyTorch. Callers that must not apply
 *          such a step check first (find_non_finite_* in unscale.cl), which MixedPrecisionOptimizer does.
 * Names:   <optimizer>_<gradient>_to_<working>: gradient f32, f16 or bf16; working f16, bf16, or none (the working
 *          pointer is then never touched, and the host passes any buffer).
 * Dtypes:  parameters and state are float; gradients and working copies as raw bits (uint, ushort).
 * Indices: i64 element indices, so counts past 2^31 address correctly.
 * Launch:  1-D in dimension 0, any number of groups of any size, a grid-stride loop as in precision.cl.
 * Bounds:  every thread checks i < count before each load and store; every buffer holds count elements.
 */
#include "dialect.h"
#include "convert.h"

#define LOAD_f32(g, i) AS_FLOAT((g)[i])
#define LOAD_f16(g, i) AS_FLOAT(nt_f16_to_f32((g)[i]))
#define LOAD_bf16(g, i) AS_FLOAT((uint)(g)[i] << 16)
#define GRAD_f32 uint
#define GRAD_f16 ushort
#define GRAD_bf16 ushort

#define STORE_none(w, i, x)
#define STORE_f16(w, i, x) (w)[i] = nt_f32_to_f16(AS_UINT(x))
#define STORE_bf16(w, i, x) (w)[i] = nt_f32_to_bf16(AS_UINT(x))

#define ADAMW_KERNEL(G, W)                                                                                          \
    KERNEL void adamw_##G##_to_##W(GLOBAL float* RESTRICT p, GLOBAL const GRAD_##G* RESTRICT grad,                  \
                                   GLOBAL float* RESTRICT m, GLOBAL float* RESTRICT v, GLOBAL ushort* working,      \
                                   i64 count, uint s_bits, uint b1_bits, uint c1_bits, uint b2_bits, uint c2_bits,  \
                                   uint decay_bits, uint step_size_bits, uint inv_sqrt_c2_bits, uint eps_bits)     \
    {                                                                                                               \
        const float s = AS_FLOAT(s_bits), b1 = AS_FLOAT(b1_bits), c1 = AS_FLOAT(c1_bits);                          \
        const float b2 = AS_FLOAT(b2_bits), c2 = AS_FLOAT(c2_bits), decay = AS_FLOAT(decay_bits);                   \
        const float step_size = AS_FLOAT(step_size_bits), inv_sqrt_c2 = AS_FLOAT(inv_sqrt_c2_bits);                 \
        const float eps = AS_FLOAT(eps_bits);                                                                       \
        const i64 stride = (i64)LSIZE(0) * NGROUPS(0);                                                              \
        for (i64 i = GID(0); i < count; i += stride)                                                                \
        {                                                                                                           \
            const float g = MUL_RN(LOAD_##G(grad, i), s);                                                           \
            const float mi = ADD_RN(MUL_RN(b1, m[i]), MUL_RN(c1, g));                                               \
            const float vi = ADD_RN(MUL_RN(b2, v[i]), MUL_RN(c2, MUL_RN(g, g)));                                    \
            const float denom = ADD_RN(MUL_RN(SQRT_RN(vi), inv_sqrt_c2), eps);                                      \
            const float pi = ADD_RN(MUL_RN(p[i], decay), -MUL_RN(step_size, DIV_RN(mi, denom)));                   \
            m[i] = mi;                                                                                              \
            v[i] = vi;                                                                                              \
            p[i] = pi;                                                                                              \
            STORE_##W(working, i, pi);                                                                              \
        }                                                                                                           \
    }

/* flags: bit 0 Nesterov, bit 1 the first step (the buffer is seeded with the gradient, never read). */
#define SGD_KERNEL(G, W)                                                                                            \
    KERNEL void sgd_##G##_to_##W(GLOBAL float* RESTRICT p, GLOBAL const GRAD_##G* RESTRICT grad,                    \
                                 GLOBAL float* RESTRICT b, GLOBAL ushort* working, i64 count, uint s_bits,           \
                                 uint mu_bits, uint one_minus_dampening_bits, uint wd_bits, uint lr_bits, uint flags) \
    {                                                                                                               \
        const float s = AS_FLOAT(s_bits), mu = AS_FLOAT(mu_bits), keep = AS_FLOAT(one_minus_dampening_bits);        \
        const float wd = AS_FLOAT(wd_bits), lr = AS_FLOAT(lr_bits);                                                 \
        const i64 stride = (i64)LSIZE(0) * NGROUPS(0);                                                              \
        for (i64 i = GID(0); i < count; i += stride)                                                                \
        {                                                                                                           \
            const float pi = p[i];                                                                                  \
            float g = MUL_RN(LOAD_##G(grad, i), s);                                                                 \
            if (wd_bits != 0u) g = ADD_RN(g, MUL_RN(wd, pi));                                                       \
            const float bi = (flags & 2u) ? g : ADD_RN(MUL_RN(mu, b[i]), MUL_RN(keep, g));                          \
            const float update = (flags & 1u) ? ADD_RN(g, MUL_RN(mu, bi)) : bi;                                     \
            const float next = ADD_RN(pi, -MUL_RN(lr, update));                                                     \
            b[i] = bi;                                                                                              \
            p[i] = next;                                                                                            \
            STORE_##W(working, i, next);                                                                            \
        }                                                                                                           \
    }

ADAMW_KERNEL(f32, none) ADAMW_KERNEL(f32, f16) ADAMW_KERNEL(f32, bf16)
ADAMW_KERNEL(f16, none) ADAMW_KERNEL(f16, f16) ADAMW_KERNEL(f16, bf16)
ADAMW_KERNEL(bf16, none) ADAMW_KERNEL(bf16, f16) ADAMW_KERNEL(bf16, bf16)

SGD_KERNEL(f32, none) SGD_KERNEL(f32, f16) SGD_KERNEL(f32, bf16)
SGD_KERNEL(f16, none) SGD_KERNEL(f16, f16) SGD_KERNEL(f16, bf16)
SGD_KERNEL(bf16, none) SGD_KERNEL(bf16, f16) SGD_KERNEL(bf16, bf16)
