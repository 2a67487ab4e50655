using ILGPU;

namespace NativeTensor.Kernels.Ilgpu;

/// <summary>
/// <c>kernels/windows.cl</c> in ILGPU C#: the lazy window gather (plain and the six gather-converts) and the eager
/// strided windows, with the same parameters, launch shape, thread scheme and bounds as the OpenCL C (see its header).
/// </summary>
/// <remarks>
/// Math: <c>out[b, t, ...] = frames[starts[b] + t, ...]</c> for the gathers, <c>out[w, t, ...] = frames[w * stride + t, ...]</c>
/// for w in [first, first + groups) for strided_windows; a gather-convert converts each element by <see cref="Conversion{TFrom, TFromFormat, TTo, TToFormat}"/>.
/// Launch: group x is the window, group y a chunk of it; thread <c>Grid.IdxY * Group.DimX + Group.IdxX</c> of the
/// <c>Group.DimX * Grid.DimY</c> lanes of a window takes units (copies) or elements (gather-converts) lane, lane + lanes, ...
/// Width: a copy moves the widest unit (16, 8, 4, 2 or 1 bytes) that divides both views' offsets and the window's
/// length. The OpenCL C tests the addresses themselves; a kernel here cannot read a view's address, so it tests the byte
/// offsets into the views, which is the same test because the backend passes views that start 16-byte aligned (a whole
/// ILGPU buffer, or a wrapped view whose offset the interop checked). Bounds: the
/// device starts are checked against <c>frame_count - window</c>, and a bad one is clamped into range and its index
/// recorded by atomic min in <c>bad[0]</c>; every unit or element index is below its window's count.
/// </remarks>
internal static class Windows
{
    /// <summary>The 16-byte copy unit (OpenCL's <c>uint4</c>): only ever copied whole, so its fields are never named.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 16)]
    private readonly struct Unit16
    {
        private readonly ulong _low, _high;

        public Unit16(ulong low, ulong high) => (_low, _high) = (low, high);
    }

    [Entry("gather_windows")]
    public static void Gather(ArrayView<byte> frames, ArrayView<long> starts, ArrayView<byte> @out, long frame_count, long row_bytes, int window,
        ArrayView<int> bad)
    {
        long b = Grid.IdxX;
        long start = WindowStart(starts, b, frame_count, window, bad);
        long block = window * row_bytes;
        CopyWindow(frames, start * row_bytes, @out, b * block, block);
    }

    [Entry("strided_windows")]
    public static void Strided(ArrayView<byte> frames, ArrayView<byte> @out, long row_bytes, int window, int stride, long first)
    {
        long w = first + Grid.IdxX;
        long block = window * row_bytes;
        CopyWindow(frames, w * stride * row_bytes, @out, w * block, block);
    }

    [Entry("gather_windows_f32_to_f16", typeof(uint), typeof(F32), typeof(ushort), typeof(F16))]
    [Entry("gather_windows_f32_to_bf16", typeof(uint), typeof(F32), typeof(ushort), typeof(BF16))]
    [Entry("gather_windows_f16_to_f32", typeof(ushort), typeof(F16), typeof(uint), typeof(F32))]
    [Entry("gather_windows_bf16_to_f32", typeof(ushort), typeof(BF16), typeof(uint), typeof(F32))]
    [Entry("gather_windows_f16_to_bf16", typeof(ushort), typeof(F16), typeof(ushort), typeof(BF16))]
    [Entry("gather_windows_bf16_to_f16", typeof(ushort), typeof(BF16), typeof(ushort), typeof(F16))]
    public static void GatherConvert<TFrom, TFromFormat, TTo, TToFormat>(ArrayView<TFrom> frames, ArrayView<long> starts, ArrayView<TTo> @out,
        long frame_count, long row_elements, int window, ArrayView<int> bad)
        where TFrom : unmanaged where TFromFormat : struct, IFloatFormat<TFrom>
        where TTo : unmanaged where TToFormat : struct, IFloatFormat<TTo>
    {
        long b = Grid.IdxX;
        long n = window * row_elements;
        long src = WindowStart(starts, b, frame_count, window, bad) * row_elements, dst = b * n;
        for (long i = Lane; i < n; i += Lanes) @out[dst + i] = Conversion<TFrom, TFromFormat, TTo, TToFormat>.Apply(frames[src + i]);
    }

    /// <summary>This thread's first unit or element of its window: <c>GROUP(1) * LSIZE(0) + LID(0)</c>.</summary>
    private static long Lane => (long)Grid.IdxY * Group.DimX + Group.IdxX;

    /// <summary>The threads of one window: <c>LSIZE(0) * NGROUPS(1)</c>.</summary>
    private static long Lanes => (long)Group.DimX * Grid.DimY;

    /// <summary>The start of window b: starts[b], or, when that is out of range, the nearest valid start, with b flagged.</summary>
    private static long WindowStart(ArrayView<long> starts, long b, long frameCount, int window, ArrayView<int> bad)
    {
        long last = frameCount - window;
        long start = starts[b];
        if (start >= 0 && start <= last) return start;
        if (Grid.IdxY == 0 && Group.IdxX == 0) Atomic.Min(ref bad[0], (int)b);
        return start < 0 ? 0 : last;
    }

    /// <summary>Copies <paramref name="bytes"/> from <c>src[from..]</c> to <c>dst[to..]</c> in the widest unit both offsets and the length allow.</summary>
    private static void CopyWindow(ArrayView<byte> src, long from, ArrayView<byte> dst, long to, long bytes)
    {
        long align = from | to | bytes;
        if ((align & 15) == 0) CopyUnits(src.SubView(from, bytes).Cast<Unit16>(), dst.SubView(to, bytes).Cast<Unit16>());
        else if ((align & 7) == 0) CopyUnits(src.SubView(from, bytes).Cast<ulong>(), dst.SubView(to, bytes).Cast<ulong>());
        else if ((align & 3) == 0) CopyUnits(src.SubView(from, bytes).Cast<uint>(), dst.SubView(to, bytes).Cast<uint>());
        else if ((align & 1) == 0) CopyUnits(src.SubView(from, bytes).Cast<ushort>(), dst.SubView(to, bytes).Cast<ushort>());
        else CopyUnits(src.SubView(from, bytes), dst.SubView(to, bytes));
    }

    /// <summary>This thread's share of one window's units: lane, lane + lanes, ...</summary>
    private static void CopyUnits<T>(ArrayView<T> src, ArrayView<T> dst) where T : unmanaged
    {
        long n = src.Length;
        for (long i = Lane; i < n; i += Lanes) dst[i] = src[i];
    }
}
