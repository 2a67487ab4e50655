using NativeTensor.Memory;
using static NativeTensor.Tests.Memory.MappedFixtures;

namespace NativeTensor.Tests.Memory;

/// <summary>MappedTensor.OpenSafetensors on the spec-built fixtures and on hand-built headers breaking one rule each.</summary>
public sealed class SafetensorsFileTests
{
    [Fact]
    public void Every_dtype_and_the_metadata_read_as_written()
    {
        IReadOnlyDictionary<string, MappedTensor> tensors = MappedTensor.OpenSafetensors(Path("all_dtypes.safetensors"));
        using var all = (IDisposable)tensors;
        Assert.Equal(["big", "brain", "empty", "half", "ids", "scalar", "weight.f32"], tensors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(Expected(6, F32), tensors["weight.f32"].Tensor.ToArray<float>());
        Assert.Equal([2L, 3], tensors["weight.f32"].Shape);
        Assert.Equal(Expected(3, F16), tensors["half"].Tensor.ToArray<Half>());
        Assert.Equal(Expected(4, BF16), tensors["brain"].Tensor.ToArray<BFloat16>());
        Assert.Equal(Expected(4, I32), tensors["ids"].Tensor.ToArray<int>());
        Assert.Equal(Expected(2, I64), tensors["big"].Tensor.ToArray<long>());
        Assert.Equal(Expected(1, F32), tensors["scalar"].Tensor.ToArray<float>());
        Assert.Empty(tensors["scalar"].Shape);
        Assert.Equal([0L, 3], tensors["empty"].Shape);
        Assert.Equal(DType.BFloat16, tensors["brain"].DType);
        foreach (MappedTensor t in tensors.Values)
        {
            Assert.True(t.Tensor.IsReadOnly);
            Assert.Equal("make_fixtures.py", t.Metadata["source"]);
            Assert.Equal("pt", t.Metadata["format"]);
            Assert.Equal(t.Name, tensors.Single(p => ReferenceEquals(p.Value, t)).Key);
        }
    }

    [Fact]
    public void Metadata_reads_without_tensors_and_a_file_without_it_has_none()
    {
        Assert.Equal("no tensors", MappedTensor.ReadSafetensorsMetadata(Path("only_metadata.safetensors"))["note"]);
        IReadOnlyDictionary<string, MappedTensor> none = MappedTensor.OpenSafetensors(Path("only_metadata.safetensors"));
        Assert.Empty(none);
        IReadOnlyDictionary<string, MappedTensor> one = MappedTensor.OpenSafetensors(Path("no_metadata.safetensors"));
        using var _ = (IDisposable)one;
        Assert.Empty(one["x"].Metadata);
        Assert.Equal(Expected(3, F32), one["x"].Tensor.ToArray<float>());
    }

    public static TheoryData<string, byte[]> BrokenFiles()
    {
        const string Ok = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
        return new()
        {
            { "too short for a .safetensors file", [1, 2, 3] },
            { "runs past the end of the file", Safetensors("{" + Ok + "}", 8, lengthField: 4096) },
            { "exceeds the format's limit", Safetensors("{" + Ok + "}", 8, lengthField: ulong.MaxValue) },
            { "not valid JSON", Safetensors("{" + Ok + ",}", 8) },
            { "not valid JSON", Safetensors("{\"a\": nope}", 8) },
            { "is a Array, not an object", Safetensors("[1,2]", 8) },
            { "has key 'a' twice", Safetensors("{" + Ok + "," + Ok + "}", 8) },
            { "has key 'dtype' twice", Safetensors("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8) },
            { "dtype F64", Safetensors("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8) },
            { "begin is past end", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8) },
            { "needs 8", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8) },
            { "run past the end of the 8-byte buffer", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8) },
            { "overlap tensor 'a'", Safetensors("{" + Ok + ",\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12) },
            { "a gap in the buffer", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8) },
            { "trailing bytes", Safetensors("{" + Ok + "}", 12) },
            { "expected a non-negative 64-bit integer", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8) },
            { "expected a non-negative 64-bit integer", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8) },
            { "overflows a 64-bit byte count", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8) },
            { "lacks 'data_offsets'", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8) },
            { "has field 'extra'", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8) },
            { "not [begin, end]", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8) },
            { "metadata values are strings", Safetensors("{\"__metadata__\":{\"k\":1}," + Ok + "}", 8) },
            { "not valid UTF-8", [9, 0, 0, 0, 0, 0, 0, 0, .. "{\"a"u8, 0xFF, .. "\":{}}"u8] },
            { "not valid UTF-16", Safetensors("{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4) },
            { "not valid UTF-16", Safetensors("{\"__metadata__\":{\"k\":\"\\ud800\"}," + Ok + "}", 8) },
            { "65 axes: at most 64", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[" + string.Join(",", Enumerable.Repeat(1, 65)) + "],\"data_offsets\":[0,4]}}", 4) },
            // NumPy's rule: the non-zero extents must fit whatever the zeros, in either order.
            { "overflows a 64-bit byte count", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,4611686018427387904,4611686018427387904],\"data_offsets\":[0,0]}}", 0) },
            { "overflows a 64-bit byte count", Safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904,0],\"data_offsets\":[0,0]}}", 0) },
        };
    }

    [Fact]
    public void Metadata_cannot_be_changed_through_a_cast()
    {
        using TempFile file = Temp(".safetensors");
        file.Write(Safetensors("{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8));
        IReadOnlyDictionary<string, MappedTensor> tensors = MappedTensor.OpenSafetensors(file.Path);
        try
        {
            IReadOnlyDictionary<string, string> metadata = tensors["a"].Metadata;
            Assert.Equal("v", metadata["k"]);
            Assert.False(metadata is IDictionary<string, string> { IsReadOnly: false }, "metadata shared by every tensor of the file is mutable");
        }
        finally
        {
            ((IDisposable)tensors).Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(BrokenFiles))]
    public void A_header_breaking_a_rule_is_refused_naming_the_file_and_the_rule(string rule, byte[] bytes)
    {
        using TempFile file = Temp(".safetensors");
        file.Write(bytes);
        var e = Assert.Throws<InvalidDataException>(() => MappedTensor.OpenSafetensors(file.Path));
        Assert.StartsWith(file.Path + ": ", e.Message);
        Assert.Contains(rule, e.Message);
        var again = Assert.Throws<InvalidDataException>(() => MappedTensor.ReadSafetensorsMetadata(file.Path));
        Assert.Equal(e.Message, again.Message);
    }
}
