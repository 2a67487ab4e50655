/*
 * warp_mma.h — the warp-level tensor-core words of the CUDA-only kernels (sm_80 and newer), as inline PTX, so a
 * kernel reads as the math and the instructions' operand layouts are stated once, here.
 *
 * Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"): lane = 4 group + quad, with
 * group = lane / 4 in [0, 8) and quad = lane % 4. A 16-bit element pair is one 32-bit register, the lower column (or
 * row, for B) in the low half.
 *   A, 16 x 16 (row):   a[0] = A[group][2 quad, +1]      a[1] = A[group + 8][2 quad, +1]
 *                       a[2] = A[group][2 quad + 8, +1]  a[3] = A[group + 8][2 quad + 8, +1]
 *   B, 16 x 8 (col):    b[0] = B[2 quad, +1][group]      b[1] = B[2 quad + 8, +1][group]
 *   C, D, 16 x 8 f32:   c[0], c[1] = C[group][2 quad, +1]   c[2], c[3] = C[group + 8][2 quad, +1]
 * ldmatrix.x4 reads four 8 x 8 matrices of 16-bit elements from shared memory; lane l gives the address of row l % 8
 * of matrix l / 8 (16-byte aligned). Register r of every lane receives matrix r: row group, elements 2 quad and
 * 2 quad + 1 (low half first); with .trans, elements (2 quad, group) and (2 quad + 1, group) of the stored matrix. So
 * a B operand stored [n][k] (k contiguous) loads without .trans, and one stored [k][n] with .trans.
 * Rounding: the products of 16-bit inputs are exact in binary32; the accumulation inside one mma is binary32 but its
 * order and rounding are the hardware's (not specified to be round-to-nearest per addition).
 */
#ifndef NATIVETENSOR_WARP_MMA_H
#define NATIVETENSOR_WARP_MMA_H

/* d += A B for one 16 x 8 x 16 step, bf16 inputs, f32 accumulators. */
__device__ __forceinline__ void nt_mma_bf16(float* d, const unsigned int* a, unsigned int b0, unsigned int b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* d += A B for one 16 x 8 x 16 step, f16 inputs, f32 accumulators. */
__device__ __forceinline__ void nt_mma_f16(float* d, const unsigned int* a, unsigned int b0, unsigned int b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* The 32-bit shared-window address of a generic pointer into shared memory, as ldmatrix takes it. */
__device__ __forceinline__ unsigned int nt_shared_address(const void* pointer)
{
    unsigned int address;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"((unsigned long long)pointer));
    return address;
}

/* Four 8 x 8 matrices of 16-bit elements; this lane gives the address of row lane % 8 of matrix lane / 8. */
__device__ __forceinline__ void nt_ldmatrix_x4(unsigned int* r, const unsigned short* row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(nt_shared_address(row))
                 : "memory");
}

/* As nt_ldmatrix_x4, each matrix transposed. */
__device__ __forceinline__ void nt_ldmatrix_x4_trans(unsigned int* r, const unsigned short* row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(nt_shared_address(row))
                 : "memory");
}

/* lo and hi rounded to nearest even as bf16, lo in the low half (cvt puts its first source in the high half). */
__device__ __forceinline__ unsigned int nt_pack_bf16(float lo, float hi)
{
    unsigned int packed;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(hi), "f"(lo));
    return packed;
}

/* lo and hi rounded to nearest even as f16 (subnormals kept), lo in the low half. */
__device__ __forceinline__ unsigned int nt_pack_f16(float lo, float hi)
{
    unsigned int packed;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(hi), "f"(lo));
    return packed;
}

/* 2^x (ex2.approx.f32, not flushed: relative error about 2^-22; 2^-inf = +0). */
__device__ __forceinline__ float nt_exp2(float x)
{
    float y;
    asm("ex2.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* log2 x (lg2.approx.f32, not flushed: absolute error about 2^-22 near 1, relative elsewhere). */
__device__ __forceinline__ float nt_log2(float x)
{
    float y;
    asm("lg2.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* The largest of v over the four lanes of this lane's quad (lanes 4 group .. 4 group + 3). */
__device__ __forceinline__ float nt_quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, 2));
}

/* The sum of v over the four lanes of this lane's quad, in the same order on every lane: (v0 + v1) + (v2 + v3). */
__device__ __forceinline__ float nt_quad_sum(float v)
{
    v = __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, 1));
    return __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, 2));
}

#endif /* NATIVETENSOR_WARP_MMA_H */
