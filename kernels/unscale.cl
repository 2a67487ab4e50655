/*
 * unscale.cl — the loss-scaling step of mixed precision, fused with its non-finite check, bit-exact with
 * PrecisionReference.Unscale.
 *
 * Math:    in place, data[i] = data[i] * inverse_scale for i in [0, count): the correctly rounded binary32 product
 *          (round to nearest even, subnormal products kept, overflow to ±Inf). BFloat16 widens exactly, multiplies
 *          in binary32 and rounds back to nearest even with integer bit arithmetic (nt_f32_to_bf16 of precision.cl,
 *          restated below). A NaN input is not multiplied (hardware differs on which NaN a product returns: x86 keeps
 *          the operand's payload, NVIDIA returns a canonical NaN) but becomes itself with the quiet bit set.
 *          *found = 1 when any input element was NaN or ±Inf; the product overflowing does not count.
 * Flag:    the host resets *found to 0 once per list of gradients, launches one kernel per gradient and reads the
 *          flag back once. Every writer stores the same value 1, so a plain store suffices: no atomics, no order.
 *          Each thread ORs its own elements' checks and stores at most once.
 * FP mode: the multiply is the one floating-point instruction here (MUL_RN: never fused into an FMA), and it must
 *          not flush subnormals, in its inputs or its product. OpenCL: the program is built with
 *          OpenClBackend.BuildOptions ("-cl-std=CL1.2"), which has no -cl-denorms-are-zero, -cl-fast-relaxed-math
 *          or -cl-unsafe-math-optimizations; a device without CL_FP_DENORM in CL_DEVICE_SINGLE_FP_CONFIG (some
 *          GPUs) may still flush, which the parity tests would show. CUDA: NvrtcCompiler's options are
 *          --gpu-architecture, -default-device and --std=c++17 only: no -ftz=true and no --use_fast_math, so
 *          NVRTC's default -ftz=false keeps subnormals, and __fmul_rn rounds to nearest even.
 * Dtypes:  Float32 as uint, BFloat16 as ushort (bits only); the scale travels as its binary32 bits, a uint.
 * Indices: i64 element indices, so counts past 2^31 address correctly.
 * Launch:  1-D in dimension 0, any number of groups of any size, a grid-stride loop as in precision.cl (the hosts
 *          size it with the conversion launch shape).
 * Bounds:  every thread checks i < count before each load and store; data holds count elements.
 */
#include "dialect.h"

/* binary32 bits times the scale; a NaN stays itself, quieted. */
INLINE uint nt_unscale(uint bits, float scale)
{
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return bits | 0x00400000u;
    return AS_UINT(MUL_RN(AS_FLOAT(bits), scale));
}

/* binary32 -> bfloat16, round to nearest even: BFloat16.RoundBits, as nt_f32_to_bf16 in precision.cl. */
INLINE ushort nt_unscale_to_bf16(uint bits)
{
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (ushort)((bits >> 16) | 0x0040u);
    return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

/* NaN or ±Inf: the exponent field all ones. */
INLINE uint nt_non_finite(uint bits) { return (uint)((bits & 0x7FFFFFFFu) >= 0x7F800000u); }

KERNEL void unscale_f32(GLOBAL uint* RESTRICT data, i64 count, uint scale_bits, GLOBAL uint* RESTRICT found)
{
    const float scale = AS_FLOAT(scale_bits);
    const i64 step = (i64)LSIZE(0) * NGROUPS(0);
    uint seen = 0u;
    for (i64 i = GID(0); i < count; i += step)
    {
        const uint bits = data[i];
        seen |= nt_non_finite(bits);
        data[i] = nt_unscale(bits, scale);
    }
    if (seen) *found = 1u;
}

KERNEL void unscale_bf16(GLOBAL ushort* RESTRICT data, i64 count, uint scale_bits, GLOBAL uint* RESTRICT found)
{
    const float scale = AS_FLOAT(scale_bits);
    const i64 step = (i64)LSIZE(0) * NGROUPS(0);
    uint seen = 0u;
    for (i64 i = GID(0); i < count; i += step)
    {
        const uint bits = (uint)data[i] << 16;
        seen |= nt_non_finite(bits);
        data[i] = nt_unscale_to_bf16(nt_unscale(bits, scale));
    }
    if (seen) *found = 1u;
}

/*
 * find_non_finite_*: the check alone, read-only, for optimizers that fold the unscale into their own step and for
 * Float16 gradients (which UnscaleAndCheck refuses). Same flag protocol, launch and bounds as the unscale kernels:
 * *found = 1 when any of the count elements is NaN or ±Inf. One element per loop turn: the bytes read, not the
 * instructions, bound this kernel.
 */
KERNEL void find_non_finite_f32(GLOBAL const uint* RESTRICT data, i64 count, GLOBAL uint* RESTRICT found)
{
    const i64 step = (i64)LSIZE(0) * NGROUPS(0);
    uint seen = 0u;
    for (i64 i = GID(0); i < count; i += step) seen |= nt_non_finite(data[i]);
    if (seen) *found = 1u;
}

KERNEL void find_non_finite_f16(GLOBAL const ushort* RESTRICT data, i64 count, GLOBAL uint* RESTRICT found)
{
    const i64 step = (i64)LSIZE(0) * NGROUPS(0);
    uint seen = 0u;
    for (i64 i = GID(0); i < count; i += step) seen |= (uint)((data[i] & 0x7C00u) == 0x7C00u);
    if (seen) *found = 1u;
}

KERNEL void find_non_finite_bf16(GLOBAL const ushort* RESTRICT data, i64 count, GLOBAL uint* RESTRICT found)
{
    const i64 step = (i64)LSIZE(0) * NGROUPS(0);
    uint seen = 0u;
    for (i64 i = GID(0); i < count; i += step) seen |= (uint)((data[i] & 0x7F80u) == 0x7F80u);
    if (seen) *found = 1u;
}
