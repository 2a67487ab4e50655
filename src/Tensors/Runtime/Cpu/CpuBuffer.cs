using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cpu;

/// <summary>Host memory from <see cref="NativeMemory.AlignedAlloc"/>, aligned to a cache line (64 bytes) so every vector width starts aligned.</summary>
internal sealed unsafe class CpuBuffer : DeviceBuffer
{
    public const int Alignment = 64;

    private CpuBuffer(Backend owner, IntPtr handle, long byteCount) : base(owner, handle, byteCount) { }

    /// <summary>From this size on, buffers start on a 2 MiB boundary and ask Linux for transparent huge pages.</summary>
    private const long HugePage = 2 << 20;

    public static CpuBuffer Allocate(Backend owner, long bytes)
    {
        // Zero bytes still gets a real, distinct block: a handle of zero would read as "invalid".
        bool huge = bytes >= 2 * HugePage;
        void* memory;
        // AlignedAlloc reports failure by throwing, never by returning null.
        try { memory = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), huge ? (nuint)HugePage : Alignment); }
        catch (OutOfMemoryException e) { throw OutOfMemory(bytes, e); }
        // Gathers jump between windows far apart in a large frames tensor; with 4 KiB pages nearly every
        // window start is a TLB miss. Huge pages cut that 512-fold. Only whole pages inside the block are
        // advised, and a kernel that refuses the advice (THP off) just keeps small pages.
        if (huge && OperatingSystem.IsLinux())
            _ = Madvise(memory, (nuint)(bytes / HugePage * HugePage), MadviseHugePage);
        return new CpuBuffer(owner, (IntPtr)memory, bytes);
    }

    /// <summary>
    /// What was asked and what the host has: the kernel's MemAvailable (an estimate of what can be allocated without
    /// swapping, Linux 3.14+) where /proc/meminfo gives it, and the most the runtime lets this process use (its cgroup
    /// limit or the machine's memory).
    /// </summary>
    private static NativeTensorException OutOfMemory(long bytes, OutOfMemoryException inner)
    {
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        string available = MemAvailable() is long free ? $"{free:N0} bytes available (MemAvailable), " : "";
        return new NativeTensorException($"cpu: out of memory allocating {bytes:N0} bytes ({available}{limit:N0} bytes the process may use)", inner)
        {
            ErrorName = "ENOMEM",
        };
    }

    private static long? MemAvailable()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)
                    && long.TryParse(line["MemAvailable:".Length..].Trim().Split(' ')[0], out long kilobytes))
                    return kilobytes * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    private const int MadviseHugePage = 14;

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(void* address, nuint length, int advice);

    protected override bool Free(IntPtr memory)
    {
        NativeMemory.AlignedFree((void*)memory);
        return true;
    }
}
