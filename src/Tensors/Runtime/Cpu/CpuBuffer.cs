using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.Cpu;

/// <summary>Host memory from <see cref="NativeMemory.AlignedAlloc"/>, aligned to a cache line (64 bytes) so every vector width starts aligned.</summary>
internal sealed unsafe class CpuBuffer : DeviceBuffer
{
    public const int Alignment = 64;

    private CpuBuffer(Backend owner, IntPtr handle, long byteCount) : base(owner, handle, byteCount) { }

    public static CpuBuffer Allocate(Backend owner, long bytes)
    {
        // Zero bytes still gets a real, distinct block: a handle of zero would read as "invalid".
        void* memory = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), Alignment);
        if (memory is null)
            throw new NativeTensorException($"cpu: out of memory allocating {bytes:N0} bytes ({GC.GetGCMemoryInfo().TotalAvailableMemoryBytes:N0} bytes available to the process)");
        return new CpuBuffer(owner, (IntPtr)memory, bytes);
    }

    public byte* Pointer => (byte*)handle;

    protected override bool Free(IntPtr memory)
    {
        NativeMemory.AlignedFree((void*)memory);
        return true;
    }
}
