/*
 * warp_emulation_main.cpp — a host program that runs kernels/cuda/attention.cu's kernels under warp_emulation.h.
 * Built with the kernel's expanded source (KernelSources.Get) in the file named by NT_KERNEL_SOURCE:
 *   g++ -std=c++20 -O2 -pthread -include warp_emulation.h -DNT_KERNEL_SOURCE='"attention.cu"' warp_emulation_main.cpp
 * Run as: program forward|backward <in> <out>. <in> holds, little-endian: 14 int32 (dtype 0 bf16 / 1 f16, batch, query
 * heads, kv heads, queries, keys, head dim, flags, window, key rows, key first, padded head dim, query groups, key
 * groups), the scale as binary32, then q, k and v as 16-bit bits, and for the backward dO as 16-bit bits, then the
 * log-sum-exp and delta as binary32. <out> receives, for the forward, the output as 16-bit bits, then the log-sum-exp as
 * binary32; for the backward, dq, dk and dv as 16-bit bits. The launches are the host's (Attention.TensorCores.cs): the
 * forward's query groups, or dq's query groups and then dk/dv's key groups, 128 threads each; outputs are poisoned
 * first.
 */
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include NT_KERNEL_SOURCE

typedef void (*Forward)(const ushort*, const ushort*, const ushort*, ushort*, float*, int, int, int, int, int, int, int, int, uint, uint);
typedef void (*Dq)(const ushort*, const ushort*, const ushort*, const ushort*, const float*, const float*, ushort*, int, int, int, int,
                   int, int, uint, uint);
typedef void (*DkDv)(const ushort*, const ushort*, const ushort*, const ushort*, const float*, const float*, ushort*, ushort*, int, int,
                     int, int, int, int, uint, uint);

/* The entry of a table (bf16 row, then f16 row) for the padded head dimension. */
template <typename Entry, int Count>
static Entry Find(const int (&dims)[Count], const Entry (&bf16)[Count], const Entry (&f16)[Count], int dtype, int padded)
{
    for (int i = 0; i < Count; i++)
        if (dims[i] == padded) return dtype == 0 ? bf16[i] : f16[i];
    std::fprintf(stderr, "no kernel for padded head dimension %d\n", padded);
    std::exit(2);
}

template <typename T>
static void Read(FILE* file, T* data, size_t count)
{
    if (std::fread(data, sizeof(T), count, file) != count)
    {
        std::fprintf(stderr, "short input\n");
        std::exit(2);
    }
}

/* Runs body(group) for groups 0 .. groups - 1 in turn, each as 128 threads of 4 warps with the launch's builtins. */
template <typename Body>
static void Launch(int groups, Body body)
{
    for (int x = 0; x < groups; x++)
    {
        nt_emulation::Group group;
        nt_emulation::Warp warps[4];
        std::vector<std::thread> threads;
        for (int t = 0; t < 128; t++)
            threads.emplace_back([&, t] {
                threadIdx = {(unsigned)t, 0, 0};
                blockIdx = {(unsigned)x, 0, 0};
                blockDim = {128, 1, 1};
                gridDim = {(unsigned)groups, 1, 1};
                nt_emulation::group = &group;
                nt_emulation::turn = 0;
                nt_emulation::warp = &warps[t / 32];
                body();
            });
        for (std::thread& thread : threads) thread.join();
    }
}

int main(int argc, char** argv)
{
    if (argc != 4) return 2;
    const bool backward = std::string(argv[1]) == "backward";
    FILE* in = std::fopen(argv[2], "rb");
    if (!in) return 2;
    int h[14];
    float scale;
    Read(in, h, 14);
    Read(in, &scale, 1);
    const int dtype = h[0], batch = h[1], hq = h[2], hkv = h[3], n = h[4], m = h[5], d = h[6], window = h[8];
    const int rows = h[9], first = h[10], padded = h[11], groups = h[12], key_groups = h[13];
    const uint flags = (uint)h[7];
    std::vector<ushort> q((size_t)batch * hq * n * d), k((size_t)batch * hkv * rows * d), v(k.size()), d_o(backward ? q.size() : 0);
    std::vector<float> lse((size_t)batch * hq * n, std::nanf("")), delta(backward ? lse.size() : 0);
    Read(in, q.data(), q.size());
    Read(in, k.data(), k.size());
    Read(in, v.data(), v.size());
    if (backward)
    {
        Read(in, d_o.data(), d_o.size());
        Read(in, lse.data(), lse.size());
        Read(in, delta.data(), delta.size());
    }
    std::fclose(in);
    uint scale_bits;
    std::memcpy(&scale_bits, &scale, 4);
    FILE* o = std::fopen(argv[3], "wb");
    if (!o) return 2;

    if (!backward)
    {
        const int dims[] = {32, 64, 96, 128, 192, 256};
        const Forward bf16[] = {attention_forward_bf16_d32, attention_forward_bf16_d64, attention_forward_bf16_d96,
                                attention_forward_bf16_d128, attention_forward_bf16_d192, attention_forward_bf16_d256};
        const Forward f16[] = {attention_forward_f16_d32, attention_forward_f16_d64, attention_forward_f16_d96,
                               attention_forward_f16_d128, attention_forward_f16_d192, attention_forward_f16_d256};
        const Forward entry = Find(dims, bf16, f16, dtype, padded);
        std::vector<ushort> out(q.size(), 0x7FFF);
        Launch(groups, [&] {
            entry(q.data(), k.data(), v.data(), out.data(), lse.data(), n, m, d, hq, hkv, rows, first, window, flags, scale_bits);
        });
        std::fwrite(out.data(), sizeof(ushort), out.size(), o);
        std::fwrite(lse.data(), sizeof(float), lse.size(), o);
    }
    else
    {
        const int dims[] = {32, 64, 96, 128};
        const Dq dq_bf16[] = {attention_dq_bf16_d32, attention_dq_bf16_d64, attention_dq_bf16_d96, attention_dq_bf16_d128};
        const Dq dq_f16[] = {attention_dq_f16_d32, attention_dq_f16_d64, attention_dq_f16_d96, attention_dq_f16_d128};
        const DkDv dkdv_bf16[] = {attention_dkdv_bf16_d32, attention_dkdv_bf16_d64, attention_dkdv_bf16_d96, attention_dkdv_bf16_d128};
        const DkDv dkdv_f16[] = {attention_dkdv_f16_d32, attention_dkdv_f16_d64, attention_dkdv_f16_d96, attention_dkdv_f16_d128};
        const Dq dq_entry = Find(dims, dq_bf16, dq_f16, dtype, padded);
        const DkDv dkdv_entry = Find(dims, dkdv_bf16, dkdv_f16, dtype, padded);
        std::vector<ushort> dq(q.size(), 0x7FFF), dk(k.size(), 0x7FFF), dv(k.size(), 0x7FFF);
        Launch(groups, [&] {
            dq_entry(d_o.data(), q.data(), k.data(), v.data(), lse.data(), delta.data(), dq.data(), hq, hkv, n, m, d, window, flags,
                     scale_bits);
        });
        Launch(key_groups, [&] {
            dkdv_entry(d_o.data(), q.data(), k.data(), v.data(), lse.data(), delta.data(), dk.data(), dv.data(), hq, hkv, n, m, d,
                       window, flags, scale_bits);
        });
        std::fwrite(dq.data(), sizeof(ushort), dq.size(), o);
        std::fwrite(dk.data(), sizeof(ushort), dk.size(), o);
        std::fwrite(dv.data(), sizeof(ushort), dv.size(), o);
    }
    std::fclose(o);
    return 0;
}
