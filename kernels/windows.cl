/*
 * windows.cl — lazy window gather (plain or converting) and eager window materialisation.
 *
 * Math:    gather_windows:      out[b, t, ...] = frames[starts[b] + t, ...]                b in [0, batch)
 *          gather_windows_X_to_Y: out[b, t, r] = convert(frames[starts[b] + t, r])      b in [0, batch)
 *          strided_windows:     out[w, t, ...] = frames[w * stride + t, ...]               w in [first, first + groups)
 *          A frame ("row") is row_bytes bytes (row_elements elements); a window is window rows, contiguous in frames
 *          and in out. gather_windows and strided_windows move bytes, never convert: every dtype is exact, each window
 *          one block copy. The gather-converts convert each element by the rules of convert.h, bit-exact with
 *          PrecisionReference: the reference is WindowsReference.Gather followed by PrecisionReference.Convert.
 * Dtypes:  the copies see bytes. The gather-converts, one per direction X -> Y among f32 (Float32, as uint), f16
 *          (Float16) and bf16 (BFloat16, both as ushort), six in all, read X and write Y elements.
 * Indices: all byte and element offsets are 64-bit (i64), so frame counts past 2^31 rows address correctly.
 * Launch:  a 2-D grid of groups. Group dimension 0 is the window (b or w - first); group dimension 1 splits
 *          a long window into chunks; all LSIZE(0) * NGROUPS(1) threads of a window stride through it, thread
 *          GROUP(1) * LSIZE(0) + LID(0) taking units (copies) or elements (gather-converts) lane, lane + lanes, ...
 * Width:   each window is copied in the widest unit (16, 8, 4, 2 or 1 bytes) that divides its source
 *          address, destination address and length, so unaligned rows stay correct and aligned rows move
 *          in 16-byte loads and stores. A gather-convert moves one element per step (its rule is per element).
 * Bounds:  the host checks host starts. For device starts, every gather checks 0 <= s <= frame_count - window
 *          itself: a bad start is clamped into that range (so its window is still a defined copy or conversion and
 *          no read leaves frames) and the lowest bad b is recorded in *bad (atomic min; b < 2^31 because the host
 *          caps a batch at int.MaxValue), which the host reads after the launch and raises. Every thread's unit or
 *          element index is < its window's unit or element count.
 */
#include "dialect.h"
#include "convert.h"

/* Copies one window: this thread moves units lane, lane + lanes, ... of the block. */
#define COPY_UNITS(T, src, dst, bytes, lane, lanes)                                   \
    {                                                                                  \
        GLOBAL const T* s_ = (GLOBAL const T*)(src);                                   \
        GLOBAL T* d_ = (GLOBAL T*)(dst);                                               \
        const i64 n_ = (bytes) / (i64)sizeof(T);                                       \
        for (i64 i_ = (lane); i_ < n_; i_ += (lanes)) d_[i_] = s_[i_];                 \
    }

INLINE void copy_window(GLOBAL const uchar* src, GLOBAL uchar* dst, i64 bytes)
{
    const i64 lanes = (i64)LSIZE(0) * NGROUPS(1);
    const i64 lane = GROUP(1) * LSIZE(0) + LID(0);
    const u64 align = (u64)(size_t)src | (u64)(size_t)dst | (u64)bytes;
    if ((align & 15) == 0) COPY_UNITS(uint4, src, dst, bytes, lane, lanes)
    else if ((align & 7) == 0) COPY_UNITS(uint2, src, dst, bytes, lane, lanes)
    else if ((align & 3) == 0) COPY_UNITS(uint, src, dst, bytes, lane, lanes)
    else if ((align & 1) == 0) COPY_UNITS(ushort, src, dst, bytes, lane, lanes)
    else COPY_UNITS(uchar, src, dst, bytes, lane, lanes)
}

/* The start of window b: starts[b], or, when that is out of range, the nearest valid start, with b flagged. */
INLINE i64 window_start(GLOBAL const i64* starts, i64 b, i64 frame_count, int window, GLOBAL int* bad)
{
    const i64 last = frame_count - window;
    const i64 start = starts[b];
    if (start >= 0 && start <= last) return start;
    if (GROUP(1) == 0 && LID(0) == 0) ATOMIC_MIN_INT(bad, (int)b);
    return start < 0 ? 0 : last;
}

KERNEL void gather_windows(GLOBAL const uchar* RESTRICT frames, GLOBAL const i64* RESTRICT starts,
                           GLOBAL uchar* RESTRICT out, i64 frame_count, i64 row_bytes, int window,
                           GLOBAL int* bad)
{
    const i64 b = GROUP(0);
    const i64 start = window_start(starts, b, frame_count, window, bad);
    const i64 block = (i64)window * row_bytes;
    copy_window(frames + start * row_bytes, out + b * block, block);
}

/* One gather-convert per direction: as gather_windows, in elements, each converted by RULE (a function of convert.h). */
#define GATHER_CONVERT_KERNEL(NAME, SRC, DST, RULE)                                                           \
    KERNEL void NAME(GLOBAL const SRC* RESTRICT frames, GLOBAL const i64* RESTRICT starts,                     \
                     GLOBAL DST* RESTRICT out, i64 frame_count, i64 row_elements, int window, GLOBAL int* bad) \
    {                                                                                                          \
        const i64 b = GROUP(0);                                                                                \
        const i64 start = window_start(starts, b, frame_count, window, bad);                                   \
        const i64 n = (i64)window * row_elements;                                                              \
        GLOBAL const SRC* src = frames + start * row_elements;                                                 \
        GLOBAL DST* dst = out + b * n;                                                                         \
        const i64 lanes = (i64)LSIZE(0) * NGROUPS(1);                                                          \
        for (i64 i = GROUP(1) * LSIZE(0) + LID(0); i < n; i += lanes) dst[i] = RULE(src[i]);                   \
    }

GATHER_CONVERT_KERNEL(gather_windows_f32_to_f16, uint, ushort, nt_f32_to_f16)
GATHER_CONVERT_KERNEL(gather_windows_f32_to_bf16, uint, ushort, nt_f32_to_bf16)
GATHER_CONVERT_KERNEL(gather_windows_f16_to_f32, ushort, uint, nt_f16_to_f32)
GATHER_CONVERT_KERNEL(gather_windows_bf16_to_f32, ushort, uint, nt_bf16_to_f32)
GATHER_CONVERT_KERNEL(gather_windows_f16_to_bf16, ushort, ushort, nt_f16_to_bf16)
GATHER_CONVERT_KERNEL(gather_windows_bf16_to_f16, ushort, ushort, nt_bf16_to_f16)

KERNEL void strided_windows(GLOBAL const uchar* RESTRICT frames, GLOBAL uchar* RESTRICT out,
                            i64 row_bytes, int window, int stride, i64 first)
{
    const i64 w = first + GROUP(0);
    const i64 block = (i64)window * row_bytes;
    copy_window(frames + w * stride * row_bytes, out + w * block, block);
}
