/*
 * clang_cuda_prelude.h — what NVRTC declares before a kernel's first line, for clang's CUDA front end without a CUDA
 * toolkit (-nocudainc -nocudalib): the execution-space keywords, the builtin index variables, the vector types uint2,
 * uint3, uint4 and dim3, the device math intrinsics (__fmul_rn, __clz, ...), the libm functions the kernels call (expf,
 * logf: NVRTC's are libdevice's __nv_expf and __nv_logf), and atomicMin. With it, a kernel that
 * compiles here uses nothing NVRTC lacks; clang's own declarations are stricter in places (threadIdx is not a uint3),
 * which is the point. Only the tests include it.
 */
#define CUDA_VERSION 12000
typedef __SIZE_TYPE__ size_t;

#define __host__ __attribute__((host))
#define __device__ __attribute__((device))
#define __global__ __attribute__((global))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
#define __restrict__ __restrict

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };
struct __attribute__((aligned(8))) uint2 { unsigned int x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned int x, y, z, w; };

#include <__clang_cuda_builtin_vars.h>
#include <__clang_cuda_libdevice_declares.h>
#include <__clang_cuda_device_functions.h>

__device__ inline int atomicMin(int *address, int value) { return __nvvm_atom_min_gen_i(address, value); }
__device__ inline float expf(float x) { return __nv_expf(x); }
__device__ inline float logf(float x) { return __nv_logf(x); }

/* Warp shuffles and float math NVRTC declares without a header (the CUDA-only kernels under kernels/cuda/ use them). */
__device__ inline float __shfl_xor_sync(unsigned int mask, float value, int lane_mask)
{
    /* clang's builtin needs a PTX version that -nocudainc does not announce; the instruction itself is what NVRTC emits. */
    float result;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, %3;" : "=f"(result) : "f"(value), "r"(lane_mask), "r"(mask));
    return result;
}
__device__ inline float fmaxf(float a, float b) { return __builtin_fmaxf(a, b); }
__device__ inline void __syncwarp(unsigned int mask = 0xFFFFFFFFu) { asm volatile("bar.warp.sync %0;" : : "r"(mask) : "memory"); }
