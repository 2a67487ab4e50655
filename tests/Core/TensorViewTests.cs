using System.Runtime.InteropServices;

namespace NativeTensor.Tests.Core;

/// <summary>Tensors over host memory another handle owns (the base of mapped tensors and file-backed caches).</summary>
public sealed unsafe class TensorViewTests
{
    /// <summary>A native block that counts its releases, standing in for a file mapping.</summary>
    private sealed class Block : SafeHandle
    {
        public Block(int bytes) : base(IntPtr.Zero, ownsHandle: true) => SetHandle((IntPtr)NativeMemory.AllocZeroed((nuint)bytes));

        public int Releases;

        public override bool IsInvalid => handle == IntPtr.Zero;

        public Span<float> Floats(int count) => new((void*)handle, count);

        protected override bool ReleaseHandle()
        {
            Releases++;
            NativeMemory.Free((void*)handle);
            return true;
        }
    }

    [Fact]
    public void A_view_reads_the_owners_bytes_in_place_at_its_offset()
    {
        using var block = new Block(64);
        block.Floats(16).Fill(0);
        block.Floats(16)[4] = 7;
        using Tensor view = Tensor.ViewOfHostMemory(DType.Float32, [2, 2], block, byteOffset: 16, readOnly: false);
        view.AsSpan<float>()[1] = 9;                          // writes through to the owner's memory
        Assert.Equal([7f, 9f, 0f, 0f], view.ToArray<float>());
        Assert.Equal(9f, block.Floats(16)[5]);
    }

    [Fact]
    public void The_owner_lives_until_its_last_view_is_disposed_in_any_order()
    {
        long live = Device.Cpu.AllocatedBytes;
        var block = new Block(64);
        Tensor first = Tensor.ViewOfHostMemory(DType.Float32, [4], block, 0, readOnly: true);
        Tensor second = Tensor.ViewOfHostMemory(DType.Float32, [4], block, 16, readOnly: true);
        block.Dispose();                                       // the owner's own reference goes first
        Assert.Equal(0, block.Releases);
        Assert.Equal(4, first.ToArray<float>().Length);       // still mapped: the views hold it
        second.Dispose();
        Assert.Equal(0, block.Releases);
        first.Dispose();
        Assert.Equal(1, block.Releases);
        Assert.Equal(live, Device.Cpu.AllocatedBytes);
        Assert.Throws<ObjectDisposedException>(() => Tensor.ViewOfHostMemory(DType.Float32, [1], block, 0, readOnly: true));
    }

    [Fact]
    public void A_read_only_view_refuses_every_write_and_reads_through_AsReadOnlySpan()
    {
        using var block = new Block(64);
        block.Floats(16)[0] = 3;
        using Tensor view = Tensor.ViewOfHostMemory(DType.Float32, [16], block, 0, readOnly: true);
        Assert.True(view.IsReadOnly);
        Assert.Equal(3f, view.AsReadOnlySpan<float>()[0]);
        Assert.Throws<InvalidOperationException>(() => view.AsSpan<float>());
        Assert.Throws<InvalidOperationException>(() => view.CopyFrom<float>(new float[16]));
        Assert.Equal(3f, block.Floats(16)[0]);
        using Tensor copy = view.To(Device.Cpu);               // reading it into a tensor of its own is the way to change it
        Assert.False(copy.IsReadOnly);
        Assert.Equal(view.ToArray<float>(), copy.ToArray<float>());
    }
}
