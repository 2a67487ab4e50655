using System.Runtime.InteropServices;

namespace NativeTensor.Memory.Files;

/// <summary>
/// A scratch file of fixed length, mapped read-write, that no one else can find and that cannot outlive its users: on
/// Unix it is created under a unique name (<see cref="FileMode.CreateNew"/>, owner-only permissions, an exclusive lock)
/// and unlinked at once, before it is even sized, so the inode lives only as long as this process holds its descriptor
/// or its mapping. The kernel frees its blocks when both are gone: on <see cref="Dispose"/>, or when the process dies
/// however it dies (<c>kill -9</c> included). On Windows the name cannot be removed while open; the file is opened with
/// <see cref="FileOptions.DeleteOnClose"/>, which the OS honours when the last handle closes, process death included.
/// </summary>
/// <remarks>
/// The only moment a crash can leave the file behind is between <c>open</c> and <c>unlink</c> (two consecutive system
/// calls, the file still empty). Every block is reserved at creation (see <see cref="Reserve"/>), so a full disk is an
/// exception from the constructor rather than a fault (SIGBUS) at a later write into the mapping; a directory on tmpfs (<c>/dev/shm</c>, often <c>/tmp</c> in containers) is memory, not disk.
/// </remarks>
internal sealed class TemporaryBacking : IDisposable
{
    private readonly FileStream _file;
    private readonly FileMapping _mapping;

    private TemporaryBacking(FileStream file, FileMapping mapping, string path)
    {
        _file = file;
        _mapping = mapping;
        Path = path;
    }

    /// <summary>The name the file was created under; on Unix it no longer exists in its directory.</summary>
    public string Path { get; }

    /// <summary>Bytes mapped.</summary>
    public long Length => _mapping.Length;

    /// <summary>The handle tensor views of the mapping hold (see <see cref="FileMapping.Owner"/>).</summary>
    public SafeHandle Owner => _mapping.Owner;

    /// <summary>The file's length as the file system reports it now (<c>fstat</c>), for tests that it never grows.</summary>
    public long FileLength => _file.Length;

    /// <summary>Creates, unlinks, sizes and maps a new file of <paramref name="length"/> bytes in <paramref name="directory"/>.</summary>
    /// <param name="directory">An existing directory.</param>
    /// <param name="prefix">The start of the file's name, saying who made it (e.g. <c>kvcache</c>).</param>
    /// <param name="length">Bytes, at least 1.</param>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="IOException">The file could not be created, sized or mapped (disk quota, address space).</exception>
    /// <exception cref="UnauthorizedAccessException">The directory may not be written.</exception>
    public static TemporaryBacking Create(string directory, string prefix, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        string full = System.IO.Path.GetFullPath(directory);
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"backing directory '{directory}' does not exist: create it first (only the cache's own file is created)");
        string path = System.IO.Path.Combine(full, $"{prefix}-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        bool unlinkNow = !OperatingSystem.IsWindows();
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.None,
            BufferSize = 0,
            Options = unlinkNow ? FileOptions.None : FileOptions.DeleteOnClose,
        };
        // Keys and values are the user's prompts in another form: nobody else may read them while the name exists.
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var file = new FileStream(path, options);
        FileMapping? mapping = null;
        try
        {
            if (unlinkNow) File.Delete(path);
            file.SetLength(length);
            Reserve(file, length);
            mapping = FileMapping.Map(file, length, writable: true);
            return new TemporaryBacking(file, mapping, path);
        }
        catch
        {
            mapping?.Dispose();
            file.Dispose();
            if (unlinkNow) DeleteQuietly(path);
            throw;
        }
    }

    /// <summary>
    /// Allocates every block of the file now (Linux <c>posix_fallocate</c>), so a disk too small for the cache is an
    /// <see cref="IOException"/> here, not a SIGBUS at some later append that writes into a hole. File systems without
    /// the call get blocks as pages are written (the glibc fallback writes a byte per block, which works as well).
    /// </summary>
    private static void Reserve(FileStream file, long length)
    {
        if (!OperatingSystem.IsLinux()) return;
        int error = posix_fallocate(file.SafeFileHandle.DangerousGetHandle().ToInt32(), 0, length);
        if (error != 0)
            throw new IOException($"could not reserve {length:N0} bytes for the backing file in '{System.IO.Path.GetDirectoryName(file.Name)}': " +
                                  $"{Marshal.GetPInvokeErrorMessage(error)} (errno {error})");
    }

    [DllImport("libc")]
    private static extern int posix_fallocate(int fd, long offset, long length);

    /// <summary>Unmaps (once every view is released) and closes the file, which frees its blocks. Safe to call twice.</summary>
    public void Dispose()
    {
        _mapping.Dispose();
        _file.Dispose();
    }

    /// <summary>A second try at removing the name after a failure; the first failure is the one reported.</summary>
    private static void DeleteQuietly(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
