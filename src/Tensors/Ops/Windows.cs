using System.Buffers;

namespace NativeTensor;

/// <summary>
/// Sliding windows along axis 0 (time). A frame is everything after axis 0: a token for frames [N], a
/// feature vector for [N, D], a matrix for [N, A, B]. Window s of length W covers frames s .. s + W - 1.
/// </summary>
/// <remarks>
/// <para><see cref="Gather(Tensor, ReadOnlySpan{long}, int, Tensor?, DType?)"/> is the lazy path: it builds only the
/// batch a training step needs, <c>out[b, t, ...] = frames[starts[b] + t, ...]</c>, so a data set of N frames
/// costs N frames of memory instead of <c>Count(N, W, stride) * W</c>. <see cref="Eager"/> materialises every
/// window and exists as proof: the tests check that Gather equals the matching rows of Eager.</para>
/// <para>All offsets are 64-bit, so frame counts past 2^31 rows work. Without an <c>outputType</c> every DType is
/// moved bit-exactly (NaN payloads included): windows copy bytes. With one, each element is converted as
/// <see cref="Precision.Convert"/> converts it, in the same pass.</para>
/// </remarks>
public static class Windows
{
    /// <summary>The number of windows: <c>(frames - window) / stride + 1</c>, or 0 when <paramref name="frames"/> &lt; <paramref name="window"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">frames &lt; 0, window &lt; 1 or stride &lt; 1.</exception>
    public static long Count(long frames, int window, int stride = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frames);
        WindowRules.Window(window);
        WindowRules.Stride(stride);
        return frames < window ? 0 : (frames - window) / stride + 1;
    }

    /// <summary>
    /// Every window, materialised: <c>out[s, t, ...] = frames[s * stride + t, ...]</c> for s in
    /// [0, <see cref="Count"/>), shape [S, W, frames.Shape[1..]], on the frames' device.
    /// </summary>
    /// <exception cref="ArgumentNullException">frames is null.</exception>
    /// <exception cref="ObjectDisposedException">frames was disposed.</exception>
    /// <exception cref="ArgumentException">frames has rank 0.</exception>
    /// <exception cref="ArgumentOutOfRangeException">window &lt; 1, stride &lt; 1, or window exceeds the frame count.</exception>
    public static Tensor Eager(Tensor frames, int window, int stride = 1)
    {
        WindowRules.Frames(frames, window);
        WindowRules.Stride(stride);
        long count = Count(frames.Shape[0], window, stride);
        long[] shape = WindowRules.OutputShape(frames, count, window);
        Tensor output = Tensor.Allocate(frames.DType, shape, frames.Device);
        try
        {
            frames.Device.Backend.StridedWindows(frames.Buffer, RowBytes(frames), count, window, stride, output.Buffer);
            return output;
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One batch of windows: <c>out[b, t, ...] = frames[starts[b] + t, ...]</c>, shape [B, W, frames.Shape[1..]]
    /// with B = starts.Length, on the frames' device. Pass <paramref name="output"/> to reuse one buffer across
    /// batches (nothing is allocated then); it must have exactly that shape, dtype and device. Pass
    /// <paramref name="outputType"/> to convert while gathering, in the same single pass (frames kept as BFloat16 or
    /// Float16 give Float32 batches, or the reverse), each element rounded as <see cref="Precision.Convert"/> does.
    /// </summary>
    /// <returns><paramref name="output"/> when given, else a new tensor.</returns>
    /// <exception cref="ArgumentNullException">frames is null.</exception>
    /// <exception cref="ObjectDisposedException">frames or output was disposed.</exception>
    /// <exception cref="ArgumentException">frames has rank 0; output has the wrong shape, dtype or device; outputType converts between non-floating-point dtypes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">window &lt; 1 or exceeds the frame count; a start is negative or
    /// its window runs past the last frame (the message names the index and value). Nothing is written then.</exception>
    public static Tensor Gather(Tensor frames, ReadOnlySpan<long> starts, int window, Tensor? output = null, DType? outputType = null)
    {
        WindowRules.Frames(frames, window);
        DType to = WindowRules.OutputType(frames, outputType);
        // The span may be memory that changes under us: another thread's, or a CPU tensor that is this gather's own
        // output. Check a snapshot and gather from exactly that, so what was checked is what is read.
        long[] snapshot = ArrayPool<long>.Shared.Rent(starts.Length);
        try
        {
            ReadOnlySpan<long> checkedStarts = snapshot.AsSpan(0, starts.Length);
            starts.CopyTo(snapshot);
            WindowRules.Starts(checkedStarts, window, frames.Shape[0]);
            return Launch(frames, starts.Length, window, output, to, to == frames.DType
                ? (backend, target, state) => backend.GatherWindows(frames.Buffer, RowBytes(frames), state, window, target)
                : (backend, target, state) => backend.GatherWindows(frames.Buffer, frames.DType, RowElements(frames), state, window, target, to),
                checkedStarts);
        }
        finally
        {
            ArrayPool<long>.Shared.Return(snapshot);
        }
    }

    /// <summary>
    /// As <see cref="Gather(Tensor, ReadOnlySpan{long}, int, Tensor?, DType?)"/>, with the starts in an Int64 tensor [B] on
    /// the frames' device, so a batch built on the device never visits the host. On the CPU the starts are checked
    /// before anything is written. On OpenCL and CUDA they are checked by the kernel, which clamps a bad start into
    /// range (so nothing is read out of bounds and every output byte is defined) and flags it; the call then throws
    /// after synchronising, naming the first bad start, and the output holds the clamped windows.
    /// </summary>
    /// <exception cref="ArgumentException">starts is not Int64, not rank 1, or on another device; see the other overload for the rest.</exception>
    public static Tensor Gather(Tensor frames, Tensor starts, int window, Tensor? output = null, DType? outputType = null)
    {
        WindowRules.Frames(frames, window);
        DType to = WindowRules.OutputType(frames, outputType);
        WindowRules.StartsTensor(starts, frames);
        int batch = (int)starts.Shape[0];
        return Launch(frames, batch, window, output, to, to == frames.DType
            ? (backend, target, _) => backend.GatherWindows(frames.Buffer, frames.Shape[0], RowBytes(frames), starts.Buffer, batch, window, target)
            : (backend, target, _) => backend.GatherWindows(frames.Buffer, frames.DType, frames.Shape[0], RowElements(frames), starts.Buffer, batch, window, target, to),
            ReadOnlySpan<long>.Empty);
    }

    private delegate void Kernel(Runtime.Backend backend, Runtime.DeviceBuffer output, ReadOnlySpan<long> state);

    /// <summary>Checks or allocates the output, then runs the kernel; a new output is freed if the kernel fails.</summary>
    private static Tensor Launch(Tensor frames, long batch, int window, Tensor? output, DType to, Kernel kernel, ReadOnlySpan<long> state)
    {
        long[] shape = WindowRules.OutputShape(frames, batch, window);
        if (output is not null) WindowRules.Output(output, frames, shape, to);
        Tensor result = output ?? Tensor.Allocate(to, shape, frames.Device);
        try
        {
            if (batch > 0) kernel(frames.Device.Backend, result.Buffer, state);
            return result;
        }
        catch when (output is null)
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>Bytes of one frame: everything after axis 0.</summary>
    private static long RowBytes(Tensor frames) => checked(RowElements(frames) * frames.DType.SizeOf());

    /// <summary>Elements of one frame: the product of the extents after axis 0.</summary>
    private static long RowElements(Tensor frames)
    {
        long row = 1;
        for (int i = 1; i < frames.Rank; i++) row = checked(row * frames.Shape[i]);
        return row;
    }
}
