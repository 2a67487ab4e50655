using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace NativeTensor.Memory.Files;

/// <summary>Opening a tensor file for its header, and bounded reads of the header's bytes, before any mapping exists.</summary>
internal static unsafe class FileBytes
{
    /// <summary>
    /// Opens <paramref name="path"/> for reading, after making sure it is a regular file: opening a FIFO for reading
    /// blocks until some writer appears, and a directory, a device or a socket cannot be mapped.
    /// </summary>
    /// <exception cref="IOException">The path is not a regular file (FileNotFoundException when it does not exist).</exception>
    public static FileStream OpenRegular(string path)
    {
        if (Directory.Exists(path)) throw new IOException($"{path} is a directory: only a regular file can be mapped");
        if (OperatingSystem.IsLinux() && FileType(path) is int type && type != RegularFile)
            throw new IOException($"{path} is not a regular file (it is a {TypeName(type)}): only a regular file can be mapped");
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.RandomAccess);
    }

    private const int RegularFile = 0x8000, TypeMask = 0xF000;

    private static string TypeName(int type) => type switch
    {
        0x1000 => "FIFO",
        0x2000 => "character device",
        0x6000 => "block device",
        0xC000 => "socket",
        _ => $"file of type 0x{type:X}",
    };

    /// <summary>The S_IFMT bits of the file <paramref name="path"/> names (links followed), or null when statx cannot say.</summary>
    private static int? FileType(string path)
    {
        // statx's buffer has one layout on every architecture, unlike stat's: stx_mode is a u16 at byte 28 of 256.
        const int AtFdCwd = -100, StatxType = 1;
        byte* buffer = stackalloc byte[256];
        try
        {
            if (statx(AtFdCwd, path, 0, StatxType, buffer) != 0) return null;   // e.g. missing: FileStream says so next
        }
        catch (EntryPointNotFoundException)
        {
            return null;                                                     // a C library older than glibc 2.28
        }
        return *(ushort*)(buffer + 28) & TypeMask;
    }

    [DllImport("libc", CharSet = CharSet.Ansi, BestFitMapping = false)]
    private static extern int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>Exactly <paramref name="count"/> bytes at <paramref name="offset"/>.</summary>
    /// <exception cref="InvalidDataException">The file ended first (it shrank since its length was read).</exception>
    public static byte[] Read(string path, SafeFileHandle file, long offset, int count)
    {
        var bytes = new byte[count];
        int done = 0;
        while (done < count)
        {
            int read = RandomAccess.Read(file, bytes.AsSpan(done), offset + done);
            if (read == 0) throw FormatErrors.Refuse(path, $"the file ended at byte {offset + done} while its header was read (it changed while opening)");
            done += read;
        }
        return bytes;
    }
}
