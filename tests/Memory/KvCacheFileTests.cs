using NativeTensor.Memory;
using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Memory;

/// <summary>
/// The life of a file-backed cache as the kernel sees it: the file never has a name in its directory once the
/// constructor returns (so nothing is left behind, whatever kills the process), it is mapped while the cache lives and
/// neither mapped nor open after <see cref="KvCache.Dispose"/> (so the kernel frees it); and no cache, memory- or
/// file-backed, leaves an allocation behind.
/// </summary>
public sealed class KvCacheFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kvcache-test-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void The_file_is_nameless_while_the_cache_lives_and_gone_from_the_process_after_dispose()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc/self/maps and /proc/self/fd are Linux's");
        var cache = new KvCache(2, 64, 16, DType.BFloat16, _directory, ring: true);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_directory));
        Assert.StartsWith(_directory + Path.DirectorySeparatorChar, cache.BackingPath);
        Assert.False(File.Exists(cache.BackingPath));

        using (Tensor block = Tensor.Zeros(DType.BFloat16, [2, 100, 16], Device.Cpu))
            cache.Append(block, block);                    // pages written, so the file has blocks on disk
        string[] maps = MapsInto(_directory);
        Assert.NotEmpty(maps);
        Assert.All(maps, line => Assert.EndsWith(cache.BackingPath + " (deleted)", line));
        string[] fds = DescriptorsInto(_directory);
        Assert.Equal([cache.BackingPath + " (deleted)"], fds);
        Assert.Equal(cache.ByteCount, cache.BackingFileLength);

        cache.Dispose();
        Assert.Empty(MapsInto(_directory));
        Assert.Empty(DescriptorsInto(_directory));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_directory));
    }

    [Fact]
    public void A_multi_layer_cache_that_fails_at_a_layer_releases_the_layers_it_made()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc/self/maps and /proc/self/fd are Linux's");
        long bytes = Device.Cpu.AllocatedBytes;
        int made = 0;
        var failure = new IOException("layer 3 fails");
        var thrown = Assert.Throws<IOException>(() => new MultiLayerKvCache(5, () =>
        {
            if (made == 3) throw failure;
            made++;
            return new KvCache(2, 8, 4, DType.Float32, _directory);
        }));
        Assert.Same(failure, thrown);
        Assert.Equal(3, made);
        Assert.Equal(bytes, Device.Cpu.AllocatedBytes);
        Assert.Empty(MapsInto(_directory));
        Assert.Empty(DescriptorsInto(_directory));
    }

    [Fact]
    public void Many_caches_in_memory_and_on_file_leave_no_allocation_behind()
    {
        long bytes = Device.Cpu.AllocatedBytes, buffers = Device.Cpu.Backend.LiveBuffers;
        using Tensor block = Tensor.Zeros(DType.Float32, [3, 5, 7], Device.Cpu);
        for (int i = 0; i < 40; i++)
        {
            using var cache = new KvCache(3, 16, 7, i % 3 == 0 ? DType.Float32 : DType.Float16, i % 2 == 0 ? _directory : null, ring: i % 4 < 2);
            // A file-backed cache maps its storage: a view, not an allocation.
            Assert.Equal(bytes + (cache.BackingPath is null ? cache.ByteCount : 0), Device.Cpu.AllocatedBytes - block.ByteCount);
            cache.Append(block, block);
            (Tensor k, Tensor v) = cache.Read(1, 4);
            k.Dispose();
            v.Dispose();
        }
        using (var layers = new MultiLayerKvCache(4, 3, 16, 7, DType.BFloat16, _directory, ring: true))
            layers[2].Append(block, block);
        Assert.Equal(bytes + block.ByteCount, Device.Cpu.AllocatedBytes);
        Assert.Equal(buffers + 1, Device.Cpu.Backend.LiveBuffers);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_directory));
    }

    [Fact]
    public void A_cache_in_device_memory_frees_it_on_dispose()
    {
        Device openCl = Backends.Require(DeviceKind.OpenCl);
        long bytes = openCl.AllocatedBytes;
        var cache = new MultiLayerKvCache(3, 2, 32, 8, DType.Float16, device: openCl);
        Assert.Equal(bytes + cache.ByteCount, openCl.AllocatedBytes);
        Assert.Same(openCl, cache[1].Device);
        cache.Dispose();
        Assert.Equal(bytes, openCl.AllocatedBytes);
    }

    /// <summary>The lines of <c>/proc/self/maps</c> whose file lies in <paramref name="directory"/>.</summary>
    private static string[] MapsInto(string directory) =>
        [.. File.ReadAllLines("/proc/self/maps").Where(line => line.Contains(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))];

    /// <summary>Where this process's open descriptors that point into <paramref name="directory"/> lead.</summary>
    private static string[] DescriptorsInto(string directory) =>
        [.. Directory.EnumerateFileSystemEntries("/proc/self/fd")
            .Select(fd => { try { return new FileInfo(fd).LinkTarget; } catch (IOException) { return null; } })
            .OfType<string>()
            .Where(target => target.StartsWith(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))];
}
