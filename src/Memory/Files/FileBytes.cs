using Microsoft.Win32.SafeHandles;

namespace NativeTensor.Memory.Files;

/// <summary>Bounded reads of a file's header bytes, before any mapping exists.</summary>
internal static class FileBytes
{
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
