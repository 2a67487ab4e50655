/*
 * warp_emulation.h — runs a CUDA-only kernel of kernels/cuda/ on the CPU, for machines without a GPU: the source is
 * compiled as host C++20 with this header included first (-include), and every thread of a group is a std::thread.
 * It stands in for what the kernel takes from NVRTC (qualifiers, builtin index variables, __syncthreads, the float
 * intrinsics) and for kernels/cuda/warp_mma.h, whose include guard it defines: mma.sync, ldmatrix and the shuffles are
 * done by the 32 threads of a warp meeting at a barrier and reading each other's operands, with the fragment layouts
 * of the PTX ISA as warp_mma.h's header states them. So the kernel's index arithmetic, masking, online softmax, ring
 * addressing and staging run as written; only the instructions' layouts are taken on trust from the ISA.
 * Only the tests include it (Runtime/KernelCompile/warp_emulation_main.cpp).
 */
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>

struct dim3 { unsigned int x = 0, y = 0, z = 0; };
struct uint3 { unsigned int x, y, z; };
struct alignas(8) uint2 { unsigned int x, y; };
struct alignas(16) uint4 { unsigned int x, y, z, w; };

#define __host__
#define __device__
#define __global__
#define __shared__ static
#define __constant__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace nt_emulation
{
/* What the 32 threads of one warp exchange; each operation writes, meets, reads, meets. */
struct Warp
{
    std::barrier<> meet{32};
    float f[32];
    unsigned int a[32][4], b[32][2];
    float c[32][4];
    const unsigned short* row[32];
};

/* What the threads of one group share besides their barrier: two slots for __syncthreads_or, used in turn. */
struct Group
{
    std::barrier<> meet{128};
    std::atomic<int> any[2] = {0, 0};
};

inline thread_local Warp* warp = nullptr;
inline thread_local Group* group = nullptr;
inline thread_local int turn = 0;
inline thread_local bool bf16 = true;   /* the element type the current kernel's mma reads */

inline int lane() { return (int)(threadIdx.x & 31u); }

inline float widen(unsigned short bits, bool brain)
{
    if (brain)
    {
        unsigned int wide = (unsigned int)bits << 16;
        float f;
        std::memcpy(&f, &wide, 4);
        return f;
    }
    _Float16 h;
    std::memcpy(&h, &bits, 2);
    return (float)h;
}

inline unsigned short narrow(float x, bool brain)
{
    if (brain)
    {
        unsigned int bits;
        std::memcpy(&bits, &x, 4);
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (unsigned short)((bits >> 16) | 0x40u);
        return (unsigned short)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
    _Float16 h = (_Float16)x;   /* round to nearest even, subnormals kept */
    unsigned short bits;
    std::memcpy(&bits, &h, 2);
    return bits;
}

inline void mma(float* d, const unsigned int* a, unsigned int b0, unsigned int b1)
{
    Warp& w = *warp;
    const int l = lane();
    for (int i = 0; i < 4; i++) w.a[l][i] = a[i], w.c[l][i] = d[i];
    w.b[l][0] = b0, w.b[l][1] = b1;
    w.meet.arrive_and_wait();
    float A[16][16], B[16][8], C[16][8];
    for (int t = 0; t < 32; t++)
    {
        const int g = t >> 2, q = t & 3;
        for (int i = 0; i < 8; i++)   /* a_i: row g + 8 for i in {2, 3, 6, 7}; column 2 q + (i & 1) + 8 for i >= 4 */
        {
            const unsigned int reg = w.a[t][i / 2];
            A[g + 8 * ((i >> 1) & 1)][2 * q + (i & 1) + 8 * (i >> 2)] = widen((unsigned short)(reg >> (16 * (i & 1))), bf16);
        }
        for (int i = 0; i < 4; i++)   /* b_i: row 2 q + (i & 1) + 8 for i >= 2; column g */
        {
            const unsigned int reg = w.b[t][i / 2];
            B[2 * q + (i & 1) + 8 * (i >> 1)][g] = widen((unsigned short)(reg >> (16 * (i & 1))), bf16);
        }
        for (int i = 0; i < 4; i++) C[g + 8 * (i >> 1)][2 * q + (i & 1)] = w.c[t][i];
    }
    w.meet.arrive_and_wait();
    const int g = l >> 2, q = l & 3;
    for (int i = 0; i < 4; i++)
    {
        const int r = g + 8 * (i >> 1), col = 2 * q + (i & 1);
        float sum = C[r][col];
        for (int kk = 0; kk < 16; kk++) sum += A[r][kk] * B[kk][col];
        d[i] = sum;
    }
}

inline void ldmatrix(unsigned int* r, const unsigned short* row, bool trans)
{
    Warp& w = *warp;
    const int l = lane();
    w.row[l] = row;
    w.meet.arrive_and_wait();
    const int g = l >> 2, q = l & 3;
    for (int m = 0; m < 4; m++)
    {
        unsigned short lo, hi;
        if (!trans) lo = w.row[8 * m + g][2 * q], hi = w.row[8 * m + g][2 * q + 1];
        else lo = w.row[8 * m + 2 * q][g], hi = w.row[8 * m + 2 * q + 1][g];
        r[m] = (unsigned int)lo | ((unsigned int)hi << 16);
    }
    w.meet.arrive_and_wait();
}
} // namespace nt_emulation

inline void __syncthreads() { nt_emulation::group->meet.arrive_and_wait(); }

/* Every thread ORs into this turn's slot, meets, reads; thread 0 clears the other slot, which no thread reads again
 * before the next meeting, and everyone meets again before anyone can write the next turn's. */
inline int __syncthreads_or(int predicate)
{
    nt_emulation::Group& g = *nt_emulation::group;
    const int slot = nt_emulation::turn;
    if (predicate) g.any[slot].store(1);
    g.meet.arrive_and_wait();
    const int result = g.any[slot].load();
    if (threadIdx.x == 0) g.any[slot ^ 1].store(0);
    g.meet.arrive_and_wait();
    nt_emulation::turn = slot ^ 1;
    return result;
}

inline void __syncwarp(unsigned int = 0xFFFFFFFFu) { nt_emulation::warp->meet.arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned int, float value, int lane_mask)
{
    nt_emulation::Warp& w = *nt_emulation::warp;
    const int l = nt_emulation::lane();
    w.f[l] = value;
    w.meet.arrive_and_wait();
    const float result = w.f[l ^ lane_mask];
    w.meet.arrive_and_wait();
    return result;
}

inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
inline float __uint_as_float(unsigned int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int x; std::memcpy(&x, &f, 4); return x; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline int atomicMin(int* address, int value) { int old = *address; if (value < old) *address = value; return old; }
using std::fmaxf;

/* kernels/cuda/warp_mma.h, emulated. */
#define NATIVETENSOR_WARP_MMA_H
inline void nt_mma_bf16(float* d, const unsigned int* a, unsigned int b0, unsigned int b1)
{
    nt_emulation::bf16 = true;
    nt_emulation::mma(d, a, b0, b1);
}
inline void nt_mma_f16(float* d, const unsigned int* a, unsigned int b0, unsigned int b1)
{
    nt_emulation::bf16 = false;
    nt_emulation::mma(d, a, b0, b1);
}
inline void nt_ldmatrix_x4(unsigned int* r, const unsigned short* row) { nt_emulation::ldmatrix(r, row, false); }
inline void nt_ldmatrix_x4_trans(unsigned int* r, const unsigned short* row) { nt_emulation::ldmatrix(r, row, true); }
inline unsigned int nt_pack_bf16(float lo, float hi)
{
    return nt_emulation::narrow(lo, true) | ((unsigned int)nt_emulation::narrow(hi, true) << 16);
}
inline unsigned int nt_pack_f16(float lo, float hi)
{
    return nt_emulation::narrow(lo, false) | ((unsigned int)nt_emulation::narrow(hi, false) << 16);
}
inline float nt_exp2(float x) { return std::exp2(x); }
inline float nt_log2(float x) { return std::log2(x); }
inline float nt_quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, 2));
}
inline float nt_quad_sum(float v)
{
    v = __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, 1));
    return __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, 2));
}
