/*
 * precision.cl — conversions among Float32, Float16 and BFloat16, bit-exact with PrecisionReference.
 *
 * Math:    dst[i] = (to) src[i] for i in [0, count), by the rules of convert.h (round to nearest even, subnormals,
 *          overflow to ±Inf, NaN sign and top payload kept, widening exact on bits, 16 <-> 16 rounding once).
 * Bits:    integer arithmetic on raw bits only, the rules of src/Tensors/Cpu/Precision.cs; convert.h says why.
 * Dtypes:  Float32 as uint, Float16 and BFloat16 as ushort (bits only; no device needs half or bf16 support).
 * Indices: i64 element indices, so counts past 2^31 address correctly.
 * Launch:  1-D in dimension 0 (the OpenCL host passes a 2-D range whose dimension 1 is 1): any number of groups
 *          of any size. The host sizes the grid so each thread converts several elements: a grid-stride loop,
 *          i = GID(0), GID(0) + LSIZE(0) * NGROUPS(0), ..., keeps neighbouring threads on neighbouring elements.
 * Bounds:  every thread checks i < count before each load and store; src and dst hold count elements.
 */
#include "dialect.h"
#include "convert.h"

/* One grid-stride kernel per direction; RULE is one of the functions of convert.h. */
#define CONVERT_KERNEL(NAME, SRC, DST, RULE)                                                       \
    KERNEL void NAME(GLOBAL const SRC* RESTRICT src, GLOBAL DST* RESTRICT dst, i64 count)          \
    {                                                                                              \
        const i64 step = (i64)LSIZE(0) * NGROUPS(0);                                               \
        for (i64 i = GID(0); i < count; i += step) dst[i] = RULE(src[i]);                          \
    }

CONVERT_KERNEL(f32_to_f16, uint, ushort, nt_f32_to_f16)
CONVERT_KERNEL(f32_to_bf16, uint, ushort, nt_f32_to_bf16)
CONVERT_KERNEL(f16_to_f32, ushort, uint, nt_f16_to_f32)
CONVERT_KERNEL(bf16_to_f32, ushort, uint, nt_bf16_to_f32)
CONVERT_KERNEL(f16_to_bf16, ushort, ushort, nt_f16_to_bf16)
CONVERT_KERNEL(bf16_to_f16, ushort, ushort, nt_bf16_to_f16)
