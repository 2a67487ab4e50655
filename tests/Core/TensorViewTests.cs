using NativeTensor.Tests.Infrastructure;

namespace NativeTensor.Tests.Core;

/// <summary>Tensors over host memory another handle owns (the base of mapped tensors and file-backed caches).</summary>
public sealed class TensorViewTests
{
    [Fact]
    public void A_view_reads_the_owners_bytes_in_place_at_its_offset()
    {
        using var block = new HostBlock(64);
        block.Floats(16)[4] = 7;
        using Tensor view = Tensor.ViewOfHostMemory(DType.Float32, [2, 2], block, block.Length, byteOffset: 16, readOnly: false);
        view.AsSpan<float>()[1] = 9;                          // writes through to the owner's memory
        Assert.Equal([7f, 9f, 0f, 0f], view.ToArray<float>());
        Assert.Equal(9f, block.Floats(16)[5]);
    }

    [Fact]
    public void The_owner_lives_until_its_last_view_is_disposed_in_any_order_and_views_are_no_allocation()
    {
        long live = Device.Cpu.AllocatedBytes, buffers = Device.Cpu.Backend.LiveBuffers;
        var block = new HostBlock(64);
        Tensor first = Tensor.ViewOfHostMemory(DType.Float32, [4], block, block.Length, 0, readOnly: true);
        Tensor second = Tensor.ViewOfHostMemory(DType.Float32, [4], block, block.Length, 16, readOnly: true);
        Assert.Equal((live, buffers), (Device.Cpu.AllocatedBytes, Device.Cpu.Backend.LiveBuffers));
        block.Dispose();                                       // the owner's own reference goes first
        Assert.Equal(0, block.Releases);
        Assert.Equal(4, first.ToArray<float>().Length);       // still there: the views hold it
        second.Dispose();
        Assert.Equal(0, block.Releases);
        first.Dispose();
        Assert.Equal(1, block.Releases);
        Assert.Equal((live, buffers), (Device.Cpu.AllocatedBytes, Device.Cpu.Backend.LiveBuffers));
        Assert.Throws<ObjectDisposedException>(() => Tensor.ViewOfHostMemory(DType.Float32, [1], block, block.Length, 0, readOnly: true));
    }

    [Fact]
    public void An_undisposed_view_releases_its_owner_once_in_its_finaliser()
    {
        var block = new HostBlock(64);
        MakeAndDropView(block);
        block.Dispose();
        Assert.Equal(0, block.Releases);                      // the dropped view still holds it until finalised
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.Equal(1, block.Releases);

        static void MakeAndDropView(HostBlock block) => _ = Tensor.ViewOfHostMemory(DType.Float32, [16], block, block.Length, 0, readOnly: true);
    }

    [Fact]
    public void A_view_must_lie_inside_its_block()
    {
        using var block = new HostBlock(64);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.ViewOfHostMemory(DType.Float32, [16], block, block.Length, 4, readOnly: true));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.ViewOfHostMemory(DType.Float32, [1], block, block.Length, -4, readOnly: true));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.ViewOfHostMemory(DType.Float32, [1], block, block.Length, long.MaxValue, readOnly: true));
        using Tensor last = Tensor.ViewOfHostMemory(DType.Float32, [1], block, block.Length, 60, readOnly: true);
        using Tensor empty = Tensor.ViewOfHostMemory(DType.Float32, [0], block, block.Length, 64, readOnly: true);
        Assert.Equal(0, block.Releases);
    }

    [Fact]
    public void A_read_only_view_refuses_every_write_and_reads_through_AsReadOnlySpan()
    {
        using var block = new HostBlock(64);
        block.Floats(16)[0] = 3;
        using Tensor view = Tensor.ViewOfHostMemory(DType.Float32, [16], block, block.Length, 0, readOnly: true);
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
