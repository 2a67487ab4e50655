using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace NativeTensor.Memory.Files;

/// <summary>
/// One whole file mapped into this process (shared, so a writable mapping writes the file and a read-only one faults on
/// a write). <see cref="Owner"/> is the handle tensor views hold a reference on: the mapping is unmapped when this is
/// disposed and the last view into it is released, in whatever order that happens.
/// </summary>
/// <remarks>
/// An empty file cannot be mapped; its mapping is a one-byte native block no view ever reads, so a zero-element tensor
/// still has a valid address. A file that another process truncates under a live mapping faults on access (SIGBUS), as
/// with NumPy's memmap: mapped files are for files nobody rewrites while they are open.
/// </remarks>
internal sealed unsafe class FileMapping : IDisposable
{
    private readonly MemoryMappedFile? _file;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly EmptyBlock? _empty;

    private FileMapping(MemoryMappedFile? file, MemoryMappedViewAccessor? view, EmptyBlock? empty, long length, bool writable)
    {
        _file = file;
        _view = view;
        _empty = empty;
        Length = length;
        Writable = writable;
    }

    /// <summary>Bytes mapped: the file's length when it was mapped.</summary>
    public long Length { get; }

    /// <summary>Whether the mapping may be written (a write then reaches the file).</summary>
    public bool Writable { get; }

    /// <summary>The handle whose <see cref="SafeHandle.DangerousGetHandle"/> is the first mapped byte; views add references to it.</summary>
    public SafeHandle Owner => (SafeHandle?)_view?.SafeMemoryMappedViewHandle ?? _empty!;

    /// <summary>The first mapped byte; valid while this mapping (or a view holding <see cref="Owner"/>) is alive.</summary>
    public byte* Pointer => (byte*)Owner.DangerousGetHandle();

    /// <summary>Maps all of <paramref name="file"/>, read-only or read-write; <paramref name="length"/> is its current length.</summary>
    /// <exception cref="IOException">The operating system refused the mapping, or a read-only file shrank below <paramref name="length"/>.</exception>
    public static FileMapping Map(FileStream file, long length, bool writable)
    {
        if (length == 0) return new FileMapping(null, null, new EmptyBlock(), 0, writable);
        MemoryMappedFileAccess access = writable ? MemoryMappedFileAccess.ReadWrite : MemoryMappedFileAccess.Read;
        MemoryMappedFile mapped;
        try
        {
            mapped = MemoryMappedFile.CreateFromFile(file, mapName: null, length, access, HandleInheritability.None, leaveOpen: true);
        }
        catch (ArgumentException) when (!writable && file.Length < length)
        {
            throw new IOException($"{file.Name} shrank from {length:N0} to {file.Length:N0} bytes while it was being opened");
        }
        try
        {
            MemoryMappedViewAccessor view = mapped.CreateViewAccessor(0, length, access);
            // A view from offset 0 starts on the mapping's first byte: nothing to skip for page alignment.
            if (view.PointerOffset != 0) throw new IOException($"mapping of {file.Name} starts {view.PointerOffset} bytes into its first page");
            return new FileMapping(mapped, view, null, length, writable);
        }
        catch
        {
            mapped.Dispose();
            throw;
        }
    }

    /// <summary>Tells the kernel how a byte range will be read (Linux <c>madvise</c>); a no-op elsewhere or when refused.</summary>
    public void Advise(long offset, long length, PageAdvice advice)
    {
        if (!OperatingSystem.IsLinux() || _view is null || length <= 0) return;
        (nint start, nint bytes) = PageRange(offset, length);
        _ = Libc.madvise(Pointer + start, (nuint)bytes, (int)advice);
    }

    /// <summary>
    /// For each page of the mapping, whether it is in the page cache now (Linux <c>mincore</c>); null where the platform
    /// cannot say. A test's and a benchmark's tool: it shows which pages a read touched.
    /// </summary>
    public bool[]? ResidentPages()
    {
        if (!OperatingSystem.IsLinux() || _view is null) return null;
        long pages = (Length + Environment.SystemPageSize - 1) / Environment.SystemPageSize;
        var flags = new byte[pages];
        bool held = false;
        Owner.DangerousAddRef(ref held);
        try
        {
            fixed (byte* f = flags)
                if (Libc.mincore(Pointer, (nuint)Length, f) != 0) return null;
        }
        finally
        {
            if (held) Owner.DangerousRelease();
        }
        return Array.ConvertAll(flags, b => (b & 1) != 0);
    }

    /// <summary>
    /// Asks the kernel to drop a file's clean pages from the page cache (Linux <c>posix_fadvise(DONTNEED)</c>), so the
    /// next read comes from the disk: how a benchmark makes a cold read and a test proves which pages a read touched.
    /// Pages still mapped by some process, or dirty, may stay. Returns false where the platform has no such call.
    /// </summary>
    public static bool DropFromPageCache(SafeFileHandle file)
    {
        if (!OperatingSystem.IsLinux()) return false;
        return Libc.posix_fadvise(file.DangerousGetHandle().ToInt32(), 0, 0, Libc.FadviseDontNeed) == 0;
    }

    /// <summary>Writes dirty pages of a writable mapping back to the file and waits (<c>msync</c>).</summary>
    public void Flush() => _view?.Flush();

    /// <summary>
    /// Unmaps once every view is released; closes the file's mapping object now. Writes nothing back itself (dirty pages
    /// of a shared mapping reach the file through the page cache anyway; <see cref="Flush"/> is the way to wait for
    /// them). Safe to call twice.
    /// </summary>
    public void Dispose()
    {
        // The accessor's own Dispose flushes (msync MS_SYNC) the whole view while its handle is open: for a scratch file
        // about to be freed that would write every dirty page to disk first. Closing the handle first skips that.
        _view?.SafeMemoryMappedViewHandle.Dispose();
        _view?.Dispose();
        _file?.Dispose();
        _empty?.Dispose();
    }

    private (nint Start, nint Bytes) PageRange(long offset, long length)
    {
        long page = Environment.SystemPageSize;
        long first = offset / page * page;
        long end = Math.Min(Length, offset + length);
        return ((nint)first, (nint)(end - first));
    }

    /// <summary>The stand-in for an empty file's mapping: a one-byte native block.</summary>
    private sealed class EmptyBlock : SafeHandle
    {
        public EmptyBlock() : base(IntPtr.Zero, ownsHandle: true) => SetHandle((IntPtr)NativeMemory.Alloc(1));

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            NativeMemory.Free((void*)handle);
            return true;
        }
    }

    private static class Libc
    {
        public const int FadviseDontNeed = 4;

        [DllImport("libc", SetLastError = true)]
        public static extern int madvise(void* address, nuint length, int advice);

        [DllImport("libc", SetLastError = true)]
        public static extern int mincore(void* address, nuint length, byte* vector);

        [DllImport("libc")]
        public static extern int posix_fadvise(int fd, long offset, long length, int advice);
    }
}

/// <summary>Linux <c>madvise</c> advice values for a mapped range.</summary>
internal enum PageAdvice
{
    /// <summary>No special treatment.</summary>
    Normal = 0,
    /// <summary>Reads jump around (gathers): no read-ahead, so a read faults in only its own pages.</summary>
    Random = 1,
    /// <summary>Reads run front to back (streaming a tensor to a device): aggressive read-ahead.</summary>
    Sequential = 2,
    /// <summary>Read the range in ahead of use.</summary>
    WillNeed = 3,
    /// <summary>This process is done with the range: drop its pages from the process (a clean file page stays in the page cache).</summary>
    DontNeed = 4,
}
