/*
 * windows.cl — lazy window gather and eager window materialisation.
 *
 * Math:    gather_windows:  out[b, t, ...] = frames[starts[b] + t, ...]          b in [0, batch)
 *          strided_windows: out[w, t, ...] = frames[w * stride + t, ...]         w in [first, first + groups)
 *          A frame ("row") is row_bytes bytes; a window is window * row_bytes contiguous bytes in frames and
 *          in out, so each window is one block copy. Bytes are moved, never converted: every dtype is exact.
 * Indices: all byte offsets are 64-bit (i64), so frame counts past 2^31 rows address correctly.
 * Launch:  a 2-D grid of groups. Group dimension 0 is the window (b or w - first); group dimension 1 splits
 *          a long window into chunks; all LSIZE(0) * NGROUPS(1) threads of a window stride through it.
 * Width:   each window is copied in the widest unit (16, 8, 4, 2 or 1 bytes) that divides its source
 *          address, destination address and length, so unaligned rows stay correct and aligned rows move
 *          in 16-byte loads and stores.
 * Bounds:  the host checks host starts. For device starts, gather_windows checks 0 <= s <= frame_count -
 *          window itself: a bad start is clamped into that range (so its window is still a defined copy and no
 *          read leaves frames) and the lowest bad b is recorded in *bad (atomic min; b < 2^31 because the host
 *          caps a batch at int.MaxValue), which the host reads after the launch and raises. Every thread's unit
 *          index is < its window's unit count.
 */
#include "dialect.h"

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

KERNEL void gather_windows(GLOBAL const uchar* RESTRICT frames, GLOBAL const i64* RESTRICT starts,
                           GLOBAL uchar* RESTRICT out, i64 frame_count, i64 row_bytes, int window,
                           GLOBAL int* bad)
{
    const i64 b = GROUP(0);
    const i64 last = frame_count - window;
    i64 start = starts[b];
    if (start < 0 || start > last)
    {
        if (GROUP(1) == 0 && LID(0) == 0) ATOMIC_MIN_INT(bad, (int)b);
        start = start < 0 ? 0 : last;
    }
    const i64 block = (i64)window * row_bytes;
    copy_window(frames + start * row_bytes, out + b * block, block);
}

KERNEL void strided_windows(GLOBAL const uchar* RESTRICT frames, GLOBAL uchar* RESTRICT out,
                            i64 row_bytes, int window, int stride, i64 first)
{
    const i64 w = first + GROUP(0);
    const i64 block = (i64)window * row_bytes;
    copy_window(frames + w * stride * row_bytes, out + w * block, block);
}
