/*
 * convert.h — the integer-exact conversions among Float32, Float16 and BFloat16, shared by every kernel that
 * converts (precision.cl's conversions, windows.cl's gather-converts), so each direction has one definition.
 *
 * Rules:   bit-exact with src/Tensors/Reference/PrecisionReference.cs. Narrowing rounds to nearest, ties to even,
 *          subnormals included; a finite value at or past the largest finite value plus half an ulp becomes ±Inf;
 *          ±0 and ±Inf are kept; a NaN stays a NaN with its sign, its quiet bit set and the top payload bits that
 *          fit. Widening is exact on bits (a signalling NaN's payload is shifted up unchanged). The 16 <-> 16
 *          directions widen to binary32 (exact) and narrow once, so they round once.
 * Bits:    integer arithmetic on raw bits only, no FP instruction: hardware converters (vload_half, __float2half,
 *          cvt) canonicalise NaNs, and float adds may flush subnormals (CUDA -ftz, OpenCL devices without
 *          denormals). Subnormal halves are rounded by a shift whose dropped bits decide the round-half-even, and
 *          widened by normalising with a count of leading zeros.
 * Dtypes:  Float32 as uint, Float16 and BFloat16 as ushort (bits only; no device needs half or bf16 support).
 *
 * Written against dialect.h (INLINE, CLZ32, the integer names), so it is valid OpenCL C 1.2 and CUDA C++. The
 * runtime pastes each included header once (see KernelSources); the guards keep a second copy harmless anyway.
 */
#ifndef NATIVETENSOR_CONVERT_H
#define NATIVETENSOR_CONVERT_H

#include "dialect.h"

/* binary32 -> binary16, round to nearest even. */
INLINE ushort nt_f32_to_f16(uint bits)
{
    const uint sign = (bits >> 16) & 0x8000u;
    const uint a = bits & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (ushort)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));   /* NaN: quiet, top payload kept */
    if (a >= 0x477FF000u) return (ushort)(sign | 0x7C00u);                          /* >= 65520: rounds to Inf (or is Inf) */
    if (a >= 0x38800000u)                                                            /* normal in binary16 (>= 2^-14) */
        return (ushort)(sign | ((a - 0x38000000u + 0x0FFFu + ((a >> 13) & 1u)) >> 13));
    /* Below 2^-14 the result is a count q of 2^-24 quanta. With exponent field e and significand m (implicit bit
     * set), the value is m * 2^(e - 150) = (m >> s) quanta plus the dropped bits, s = 126 - e. For e <= 101 the
     * value is below 2^-25, half the smallest subnormal, so it rounds to 0 (binary32 subnormals included). For
     * e in [102, 112], s is in [14, 24]: add half a quantum less one, plus q's low bit, then shift — round half
     * to even from the dropped bits, as the normal path does. q = 0x400 is the smallest normal, encoded right. */
    const uint e = a >> 23;
    if (e <= 101u) return (ushort)sign;
    const uint m = (a & 0x7FFFFFu) | 0x800000u;
    const uint s = 126u - e;
    return (ushort)(sign | ((m + ((1u << (s - 1u)) - 1u) + ((m >> s) & 1u)) >> s));
}

/* binary16 -> binary32, exact. */
INLINE uint nt_f16_to_f32(ushort bits)
{
    const uint sign = ((uint)bits & 0x8000u) << 16;
    const uint em = (uint)bits & 0x7FFFu;
    if (em >= 0x7C00u) return sign | 0x7F800000u | ((em & 0x3FFu) << 13);         /* Inf, NaN (payload shifted, unchanged) */
    if (em >= 0x0400u) return sign | ((em << 13) + 0x38000000u);                     /* normal: rebias 15 -> 127 */
    if (em == 0u) return sign;
    /* Subnormal m * 2^-24, m in [1, 1023]: its leading one is bit p = 31 - clz(m), so the value is
     * 2^(p - 24) * 1.f with exponent field p + 103 = 134 - clz(m); shifting m left by clz(m) - 8 puts that one at
     * bit 23, where the exponent's add absorbs it (hence 133, not 134). */
    const int z = CLZ32(em);
    return sign | (((uint)(133 - z) << 23) + (em << (z - 8)));
}

/* binary32 -> bfloat16, round to nearest even: BFloat16.RoundBits. Integer only, so binary32 subnormals round
 * to bfloat16 subnormals exactly; the carry of the largest finite values runs into the exponent and gives Inf. */
INLINE ushort nt_f32_to_bf16(uint bits)
{
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (ushort)((bits >> 16) | 0x0040u); /* NaN: quiet, top payload kept */
    return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

/* bfloat16 -> binary32, exact: the top half of a binary32. */
INLINE uint nt_bf16_to_f32(ushort bits) { return (uint)bits << 16; }

INLINE ushort nt_f16_to_bf16(ushort bits) { return nt_f32_to_bf16(nt_f16_to_f32(bits)); }
INLINE ushort nt_bf16_to_f16(ushort bits) { return nt_f32_to_f16(nt_bf16_to_f32(bits)); }

#endif /* NATIVETENSOR_CONVERT_H */
