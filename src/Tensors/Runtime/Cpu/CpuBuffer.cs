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
        void* memory = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), huge ? (nuint)HugePage : Alignment);
        if (memory is null)
            throw new NativeTensorException($"cpu: out of memory allocating {bytes:N0} bytes ({GC.GetGCMemoryInfo().TotalAvailableMemoryBytes:N0} bytes available to the process)");
        // Gathers jump between windows far apart in a large frames tensor; with 4 KiB pages nearly every
        // window start is a TLB miss. Huge pages cut that 512-fold. Only whole pages inside the block are
        // advised, and a kernel that refuses the advice (THP off) just keeps small pages.
        if (huge && OperatingSystem.IsLinux())
            _ = Madvise(memory, (nuint)(bytes / HugePage * HugePage), MadviseHugePage);
        return new CpuBuffer(owner, (IntPtr)memory, bytes);
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
