/*
 * dialect.h — one vocabulary for kernels that compile both as OpenCL C 1.2 and as CUDA C++ (NVRTC).
 *
 * A kernel file includes this header first and then uses only these words for what differs between the
 * two languages: qualifiers, thread indices, barriers, atomics, bit counts, and fixed-width integer names. The runtime
 * pastes this file in place of `#include "dialect.h"` before building, so neither compiler needs a file
 * system. Everything else (arithmetic, pointers, vector types uint2/uint4) is common to both languages.
 *
 * Index words, per dimension d in {0, 1, 2}:
 *   LID(d)     thread index within its group         (get_local_id   / threadIdx)
 *   LSIZE(d)   threads per group                      (get_local_size / blockDim)
 *   GROUP(d)   group index within the grid            (get_group_id   / blockIdx)
 *   NGROUPS(d) groups in the grid                     (get_num_groups / gridDim)
 *   GID(d)     GROUP(d) * LSIZE(d) + LID(d), 64-bit
 *
 * Launch and memory words:
 *   GROUP_SIZE(n) after KERNEL: the kernel runs only in groups of n x 1 x 1 threads, so the compiler may size its
 *                 registers (CUDA) and work-group loops (PoCL) for exactly that
 *                 (reqd_work_group_size / __launch_bounds__)
 *   LOCAL_PTR(T)  a pointer to T in group-shared memory, for a helper's parameter: __local T* in OpenCL; plain T* in
 *                 CUDA, whose generic pointers reach shared memory (a __shared__ parameter is not allowed there)
 *
 * Bit words:
 *   CLZ32(x)   leading zero bits of the 32-bit unsigned x, as int (32 for 0)   (clz / __clz)
 *   AS_FLOAT(x), AS_UINT(f)   reinterpret 32 bits, no conversion              (as_float / __uint_as_float, ...)
 *
 * Float words:
 *   MUL_RN(a, b)  binary32 a * b, rounded to nearest even, never fused into an FMA   (* / __fmul_rn)
 *                 Subnormals are kept only if the build does not flush them: OpenCL without
 *                 -cl-denorms-are-zero on a device with CL_FP_DENORM, CUDA without -ftz=true / --use_fast_math.
 *   ADD_RN(a, b)  binary32 a + b, rounded to nearest even, never fused                (+ / __fadd_rn)
 *   DIV_RN(a, b)  binary32 a / b: correctly rounded on CUDA (__fdiv_rn) and on OpenCL when the program is built
 *                 with -cl-fp32-correctly-rounded-divide-sqrt; otherwise OpenCL 1.2 allows 2.5 ulp
 *   SQRT_RN(a)    binary32 sqrt(a): as DIV_RN (OpenCL 1.2 allows 3 ulp without that option)
 *   FMA(a, b, c)  binary32 a * b + c rounded once, to nearest even (fma / __fmaf_rn): correctly rounded in both
 *                 languages (OpenCL 1.2 §7.4; mad, whose accuracy OpenCL leaves open, is not used). For kernels
 *                 whose error analysis counts one rounding per multiply-add (linalg.cl's dot products).
 *   EXP(a), LOG(a)  binary32 e^a and natural log: OpenCL's exp and log (within 3 ulp, OpenCL 1.2 §7.4), CUDA's expf
 *                 and logf (within 2 and 1 ulp without --use_fast_math); exp(-inf) = 0, log(0) = -inf in both. For
 *                 softmaxes, whose tolerance counts a few ulp per exponential (attention.cl).
 *   OpenCL C may contract a * b + c into one fma by default; FP_CONTRACT is switched off below, so every kernel's
 *   arithmetic is the sequence of roundings its source shows, as on CUDA with the _rn intrinsics and on the CPU.
 */
#ifndef NATIVETENSOR_DIALECT_H
#define NATIVETENSOR_DIALECT_H

#ifdef __OPENCL_VERSION__

typedef long i64;
typedef ulong u64;

#define KERNEL __kernel
#define GLOBAL __global
#define LOCAL __local
#define INLINE inline
#define RESTRICT restrict
#define BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define GROUP_SIZE(n) __attribute__((reqd_work_group_size((n), 1, 1)))
#define LOCAL_PTR(T) __local T*

#define LID(d) ((int)get_local_id(d))
#define LSIZE(d) ((int)get_local_size(d))
#define GROUP(d) ((i64)get_group_id(d))
#define NGROUPS(d) ((i64)get_num_groups(d))
#define GID(d) ((i64)get_global_id(d))

#define ATOMIC_MIN_INT(pointer, value) atomic_min((pointer), (value))

#define CLZ32(x) ((int)clz((uint)(x)))
#define AS_FLOAT(x) as_float((uint)(x))
#define AS_UINT(f) as_uint((float)(f))

#pragma OPENCL FP_CONTRACT OFF
#define MUL_RN(a, b) ((a) * (b))
#define ADD_RN(a, b) ((a) + (b))
#define DIV_RN(a, b) ((a) / (b))
#define SQRT_RN(a) sqrt(a)
#define FMA(a, b, c) fma((a), (b), (c))
#define EXP(a) exp(a)
#define LOG(a) log(a)

#else /* CUDA C++ under NVRTC */

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;

#define KERNEL extern "C" __global__
#define GLOBAL
#define LOCAL __shared__
#define INLINE __device__ __forceinline__
#define RESTRICT __restrict__
#define BARRIER() __syncthreads()
#define GROUP_SIZE(n) __launch_bounds__(n)
#define LOCAL_PTR(T) T*

/* One component of a builtin index variable, by field: NVRTC declares threadIdx as uint3 and blockDim as dim3, clang
 * as structs of its own that convert to both, so a function overloaded on uint3 and dim3 would be ambiguous there. */
#define NT_DIM(v, d) ((d) == 0 ? (v).x : (d) == 1 ? (v).y : (v).z)

#define LID(d) ((int)NT_DIM(threadIdx, (d)))
#define LSIZE(d) ((int)NT_DIM(blockDim, (d)))
#define GROUP(d) ((i64)NT_DIM(blockIdx, (d)))
#define NGROUPS(d) ((i64)NT_DIM(gridDim, (d)))
#define GID(d) (GROUP(d) * LSIZE(d) + LID(d))

#define ATOMIC_MIN_INT(pointer, value) atomicMin((pointer), (value))

#define CLZ32(x) __clz((int)(x))
#define AS_FLOAT(x) __uint_as_float((unsigned int)(x))
#define AS_UINT(f) __float_as_uint((float)(f))

#define MUL_RN(a, b) __fmul_rn((a), (b))
#define ADD_RN(a, b) __fadd_rn((a), (b))
#define DIV_RN(a, b) __fdiv_rn((a), (b))
#define SQRT_RN(a) __fsqrt_rn(a)
#define FMA(a, b, c) __fmaf_rn((a), (b), (c))
#define EXP(a) expf(a)
#define LOG(a) logf(a)

#endif

#endif /* NATIVETENSOR_DIALECT_H */
