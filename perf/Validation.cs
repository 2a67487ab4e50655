using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NativeTensor.Reference;

namespace NativeTensor.Perf;

/// <summary>
/// Before anything is timed, every op on every device is compared bit for bit with
/// <see cref="WindowsReference"/> on random bits (so NaN payloads, subnormals and odd byte patterns all travel).
/// A device that fails any op is not timed.
/// </summary>
internal static class Validation
{
    private static readonly ICase[] Cases =
    [
        new Case<float>("float32 [1000, 287]", [1000, 287], Window: 30, Batch: 37),
        new Case<Half>("float16 [3001, 3] (6-byte rows)", [3001, 3], 17, 64),
        new Case<int>("int32 tokens [5000]", [5000], 512, 9),
        new Case<BFloat16>("bfloat16 [700, 4, 5]", [700, 4, 5], 11, 5),
        new Case<long>("int64 [300, 1], window = all frames", [300, 1], 300, 3),
        new Case<float>("float32 [100, 287], empty batch", [100, 287], 30, 0),
    ];

    private static readonly (string Name, Func<ICase, Device, string?> Check)[] Ops =
    [
        ("windows.gather, host starts", (c, d) => c.GatherHostStarts(d)),
        ("windows.gather, device starts", (c, d) => c.GatherDeviceStarts(d)),
        ("windows.eager, stride 1 and 3", (c, d) => c.Eager(d)),
    ];

    /// <summary>Prints one line per (op, device); returns the devices on which every op matched.</summary>
    public static List<Device> Run(IReadOnlyList<Device> devices, Report report)
    {
        var passed = new List<Device>();
        foreach (Device device in devices)
        {
            bool ok = true;
            foreach ((string name, Func<ICase, Device, string?> check) in Ops)
            {
                string? failure = Cases.Select(c => Guarded(() => check(c, device), c)).FirstOrDefault(f => f is not null);
                report.Line($"validate {name,-30} {device.Spec,-9} {(failure is null ? $"ok   ({Cases.Length} cases, bit-exact vs WindowsReference)" : $"FAIL {failure}")}");
                ok &= failure is null;
            }
            if (ok) passed.Add(device);
            else report.Line($"validate {device.Spec}: FAILED, so it is not timed");
        }
        return passed;
    }

    private static string? Guarded(Func<string?> check, ICase c)
    {
        try { return check() is { } failure ? $"{c.Name}: {failure}" : null; }
        catch (Exception e) { return $"{c.Name}: threw {e.GetType().Name}: {e.Message}"; }
    }

    private interface ICase
    {
        string Name { get; }
        string? GatherHostStarts(Device device);
        string? GatherDeviceStarts(Device device);
        string? Eager(Device device);
    }

    /// <summary>Frames of random bits with <paramref name="Shape"/>; two batches of random starts that include the first and last window.</summary>
    private sealed record Case<T>(string Name, long[] Shape, int Window, int Batch) : ICase where T : unmanaged
    {
        private readonly Random _rng = new(Name.Length * 7919 + Batch);

        private long RowElements => Shape.Skip(1).Aggregate(1L, (a, b) => a * b);

        public string? GatherHostStarts(Device device) => Gather(device, (frames, starts, output) =>
            Windows.Gather(frames, starts, Window, output));

        public string? GatherDeviceStarts(Device device) => Gather(device, (frames, starts, output) =>
        {
            using Tensor onDevice = OnDevice(Tensor.FromArray(starts), device);
            return Windows.Gather(frames, onDevice, Window, output);
        });

        public string? Eager(Device device)
        {
            T[] data = RandomBits(Shape.Aggregate(1L, (a, b) => a * b));
            using Tensor frames = OnDevice(Tensor.FromArray(data, Shape), device);
            foreach (int stride in new[] { 1, 3 })
            {
                using Tensor eager = Windows.Eager(frames, Window, stride);
                T[] expected = WindowsReference.Eager(data, Shape[0], RowElements, Window, stride);
                if (Compare(expected, eager, $"stride {stride}") is { } failure) return failure;
            }
            return null;
        }

        /// <summary>
        /// One batch into a new output, then two into one reused output that is poisoned (all 0xFF bytes) before
        /// each, so an unwritten byte shows.
        /// </summary>
        private string? Gather(Device device, Func<Tensor, long[], Tensor?, Tensor> gather)
        {
            T[] data = RandomBits(Shape.Aggregate(1L, (a, b) => a * b));
            using Tensor frames = OnDevice(Tensor.FromArray(data, Shape), device);
            long[] first = Starts();
            using (Tensor fresh = gather(frames, first, null))
                if (Compare(WindowsReference.Gather(data, Shape[0], RowElements, first, Window), fresh, "new output") is { } failure) return failure;

            using Tensor output = Tensor.Empty(DTypes.Of<T>(), [Batch, Window, .. Shape.Skip(1)], device);
            var poison = new T[output.ElementCount];
            MemoryMarshal.AsBytes(poison.AsSpan()).Fill(0xFF);
            for (int batch = 1; batch <= 2; batch++)
            {
                long[] starts = Starts();
                output.CopyFrom<T>(poison);
                Tensor result = gather(frames, starts, output);
                if (!ReferenceEquals(result, output)) return $"batch {batch}: the output tensor passed in was not returned";
                if (Compare(WindowsReference.Gather(data, Shape[0], RowElements, starts, Window), result, $"batch {batch}, reused output") is { } failure) return failure;
            }
            return null;
        }

        private long[] Starts()
        {
            long last = Shape[0] - Window;
            var starts = new long[Batch];
            for (int b = 0; b < Batch; b++) starts[b] = _rng.NextInt64(0, last + 1);
            if (Batch >= 2)
            {
                starts[0] = 0;
                starts[^1] = last;
            }
            return starts;
        }

        private T[] RandomBits(long count)
        {
            var data = new T[count];
            _rng.NextBytes(MemoryMarshal.AsBytes(data.AsSpan()));
            return data;
        }

        private static Tensor OnDevice(Tensor host, Device device)
        {
            if (device.Kind == DeviceKind.Cpu) return host;
            using (host) return host.To(device);
        }

        private string? Compare(T[] expected, Tensor actual, string what)
        {
            if (actual.ElementCount != expected.Length)
                return $"{what}: {actual.ElementCount} elements, the reference has {expected.Length}";
            T[] got = actual.ToArray<T>();
            ReadOnlySpan<byte> want = MemoryMarshal.AsBytes(expected.AsSpan()), have = MemoryMarshal.AsBytes(got.AsSpan());
            int same = want.CommonPrefixLength(have);
            if (same == want.Length) return null;
            long element = same / Unsafe.SizeOf<T>(), perWindow = Window * RowElements;
            return $"{what}: first difference at element {element} (window {element / perWindow}, frame {element % perWindow / RowElements} of it)";
        }
    }
}
