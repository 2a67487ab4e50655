/*
 * warp_emulation_main.cpp — a host program that runs kernels/cuda/attention.cu's forward under warp_emulation.h.
 * Built with the kernel's expanded source (KernelSources.Get) in the file named by NT_KERNEL_SOURCE:
 *   g++ -std=c++20 -O2 -pthread -include warp_emulation.h -DNT_KERNEL_SOURCE='"attention.cu"' warp_emulation_main.cpp
 * Run as: program <in> <out>. <in> holds, little-endian: 13 int32 (dtype 0 bf16 / 1 f16, batch, query heads, kv heads,
 * queries, keys, head dim, flags, window, key rows, key first, padded head dim, groups), the scale as binary32, then
 * q, k and v as 16-bit bits; <out> receives the output as 16-bit bits, then the log-sum-exp as binary32. The launch is
 * the host's (Attention.TensorCores.cs): the groups come in, 128 threads each; output and lse are poisoned first.
 */
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include NT_KERNEL_SOURCE

typedef void (*Entry)(const ushort*, const ushort*, const ushort*, ushort*, float*, int, int, int, int, int, int, int, int, uint, uint);

static Entry Find(int dtype, int padded)
{
    const int dims[] = {32, 64, 96, 128, 192, 256};
    const Entry bf16[] = {attention_forward_bf16_d32, attention_forward_bf16_d64, attention_forward_bf16_d96,
                          attention_forward_bf16_d128, attention_forward_bf16_d192, attention_forward_bf16_d256};
    const Entry f16[] = {attention_forward_f16_d32, attention_forward_f16_d64, attention_forward_f16_d96,
                         attention_forward_f16_d128, attention_forward_f16_d192, attention_forward_f16_d256};
    for (int i = 0; i < 6; i++)
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

int main(int argc, char** argv)
{
    if (argc != 3) return 2;
    FILE* in = std::fopen(argv[1], "rb");
    if (!in) return 2;
    int h[13];
    float scale;
    Read(in, h, 13);
    Read(in, &scale, 1);
    const int dtype = h[0], batch = h[1], hq = h[2], hkv = h[3], n = h[4], m = h[5], d = h[6], window = h[8];
    const int rows = h[9], first = h[10], padded = h[11], groups = h[12];
    const uint flags = (uint)h[7];
    std::vector<ushort> q((size_t)batch * hq * n * d), k((size_t)batch * hkv * rows * d), v(k.size());
    Read(in, q.data(), q.size());
    Read(in, k.data(), k.size());
    Read(in, v.data(), v.size());
    std::fclose(in);
    std::vector<ushort> out(q.size(), 0x7FFF);
    std::vector<float> lse((size_t)batch * hq * n, std::nanf(""));
    const Entry entry = Find(dtype, padded);
    uint scale_bits;
    std::memcpy(&scale_bits, &scale, 4);

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
                entry(q.data(), k.data(), v.data(), out.data(), lse.data(), n, m, d, hq, hkv, rows, first, window, flags, scale_bits);
            });
        for (std::thread& thread : threads) thread.join();
    }

    FILE* o = std::fopen(argv[2], "wb");
    if (!o) return 2;
    std::fwrite(out.data(), sizeof(ushort), out.size(), o);
    std::fwrite(lse.data(), sizeof(float), lse.size(), o);
    std::fclose(o);
    return 0;
}
