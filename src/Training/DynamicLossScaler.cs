using System.Buffers.Binary;

namespace NativeTensor.Training;

/// <summary>
/// Dynamic loss scaling for mixed-precision training: multiply the loss by <see cref="Scale"/> so small FP16
/// gradients do not underflow, unscale the gradients by <see cref="InverseScale"/> (see
/// <c>Precision.UnscaleAndCheck</c>), and report here whether any was non-finite.
/// </summary>
/// <remarks>
/// <para>The defaults are PyTorch GradScaler's: start at 65536; on a step with a non-finite gradient, skip the step,
/// multiply the scale by the backoff factor (0.5) and restart the count; after <c>growthInterval</c> (2000)
/// finite steps in a row, multiply it by the growth factor (2), unless that would make it infinite.</para>
/// <para>Optional, Megatron/Apex style: <c>hysteresis</c> non-finite steps (counted since the last growth) before
/// the scale backs off (every such step is still skipped), and a floor and ceiling on the scale.</para>
/// <para>BFloat16 has Float32's range and needs no scaling: <see cref="Disabled"/> keeps the scale at 1 and only
/// tells whether a step should be skipped.</para>
/// </remarks>
public sealed class DynamicLossScaler
{
    private const byte FormatVersion = 1;
    private const int SerializedBytes = 1 + 1 + 4 * 6 + 4 * 3;

    /// <summary>2^-126, the smallest normal float: backing off never reaches 0, so <see cref="InverseScale"/> stays finite.</summary>
    private static readonly float SmallestScale = BitConverter.UInt32BitsToSingle(0x0080_0000);

    private float _scale;
    private int _growthTracker;
    private int _hysteresisTracker;

    /// <summary>A scaler; the defaults are PyTorch GradScaler's.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A scale is not finite and positive (minScale may be 0), growthFactor &lt;= 1,
    /// backoffFactor outside (0, 1), growthInterval or hysteresis &lt; 1, minScale &gt; maxScale, or initialScale outside them.</exception>
    public DynamicLossScaler(float initialScale = 65536, float growthFactor = 2, float backoffFactor = 0.5f,
        int growthInterval = 2000, int hysteresis = 1, float minScale = 0, float maxScale = float.MaxValue)
        : this(true, initialScale, growthFactor, backoffFactor, growthInterval, hysteresis, minScale, maxScale)
    {
    }

    private DynamicLossScaler(bool enabled, float initialScale, float growthFactor, float backoffFactor,
        int growthInterval, int hysteresis, float minScale, float maxScale)
    {
        Positive(initialScale, nameof(initialScale));
        if (!(growthFactor > 1) || !float.IsFinite(growthFactor))
            throw new ArgumentOutOfRangeException(nameof(growthFactor), growthFactor, $"growthFactor = {growthFactor}: must be finite and > 1");
        if (!(backoffFactor > 0 && backoffFactor < 1))
            throw new ArgumentOutOfRangeException(nameof(backoffFactor), backoffFactor, $"backoffFactor = {backoffFactor}: must be in (0, 1)");
        ArgumentOutOfRangeException.ThrowIfLessThan(growthInterval, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hysteresis, 1);
        if (!(minScale == 0 || minScale >= SmallestScale) || !float.IsFinite(minScale))
            throw new ArgumentOutOfRangeException(nameof(minScale), minScale, $"minScale = {minScale}: must be 0, or finite and >= 2^-126");
        Positive(maxScale, nameof(maxScale));
        if (minScale > maxScale)
            throw new ArgumentOutOfRangeException(nameof(minScale), minScale, $"minScale = {minScale} exceeds maxScale = {maxScale}");
        if (initialScale < minScale || initialScale > maxScale)
            throw new ArgumentOutOfRangeException(nameof(initialScale), initialScale, $"initialScale = {initialScale}: must be in [{minScale}, {maxScale}]");
        IsEnabled = enabled;
        GrowthFactor = growthFactor;
        BackoffFactor = backoffFactor;
        GrowthInterval = growthInterval;
        Hysteresis = hysteresis;
        MinScale = minScale;
        MaxScale = maxScale;
        _scale = initialScale;
        _hysteresisTracker = hysteresis;
    }

    /// <summary>A scaler that never scales (scale 1), for BFloat16 or Float32 training: it only decides whether a step is skipped.</summary>
    public static DynamicLossScaler Disabled() => new(false, 1, 2, 0.5f, int.MaxValue, 1, 1, 1);

    /// <summary>False for <see cref="Disabled"/>.</summary>
    public bool IsEnabled { get; }

    /// <summary>The factor the loss is multiplied by before the backward pass.</summary>
    public float Scale => _scale;

    /// <summary>1 / <see cref="Scale"/>, divided in double and rounded once to float, for unscaling the gradients.</summary>
    public float InverseScale => (float)(1.0 / _scale);

    /// <summary>What the scale is multiplied by after <see cref="GrowthInterval"/> finite steps in a row.</summary>
    public float GrowthFactor { get; }

    /// <summary>What the scale is multiplied by when it backs off.</summary>
    public float BackoffFactor { get; }

    /// <summary>Finite steps in a row before the scale grows.</summary>
    public int GrowthInterval { get; }

    /// <summary>Non-finite steps (since the last growth) before the scale backs off; 1 backs off at every one.</summary>
    public int Hysteresis { get; }

    /// <summary>The floor the scale never backs off below.</summary>
    public float MinScale { get; }

    /// <summary>The ceiling the scale never grows past.</summary>
    public float MaxScale { get; }

    /// <summary>Finite steps since the last growth or non-finite step.</summary>
    public int GrowthTracker => _growthTracker;

    /// <summary>Non-finite steps still tolerated before the scale backs off.</summary>
    public int HysteresisTracker => _hysteresisTracker;

    /// <summary>
    /// Records one step's outcome and adjusts the scale.
    /// </summary>
    /// <param name="foundNonFinite">Whether any gradient was NaN or infinite (<c>Precision.UnscaleAndCheck</c>'s result).</param>
    /// <returns>Whether the optimizer should apply this step: false exactly when a non-finite was found.</returns>
    public bool Update(bool foundNonFinite)
    {
        if (!IsEnabled) return !foundNonFinite;
        if (foundNonFinite)
        {
            _growthTracker = 0;
            // Once the tolerance is used up, every further non-finite step backs off until a growth restores it;
            // with hysteresis 1 that is every non-finite step, as in PyTorch.
            _hysteresisTracker = Math.Max(_hysteresisTracker - 1, 0);
            if (_hysteresisTracker == 0) _scale = Math.Max(Math.Max(_scale * BackoffFactor, MinScale), SmallestScale);
            return false;
        }
        if (++_growthTracker == GrowthInterval)
        {
            _growthTracker = 0;
            _hysteresisTracker = Hysteresis;
            float grown = _scale * GrowthFactor;
            // Never to infinity (PyTorch), never past the ceiling.
            if (float.IsFinite(grown)) _scale = Math.Min(grown, MaxScale);
        }
        return true;
    }

    /// <summary>The whole state, settings included, in a small versioned little-endian form for checkpoints.</summary>
    public byte[] Serialize()
    {
        var bytes = new byte[SerializedBytes];
        Span<byte> s = bytes;
        s[0] = FormatVersion;
        s[1] = IsEnabled ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteSingleLittleEndian(s[2..], _scale);
        BinaryPrimitives.WriteSingleLittleEndian(s[6..], GrowthFactor);
        BinaryPrimitives.WriteSingleLittleEndian(s[10..], BackoffFactor);
        BinaryPrimitives.WriteSingleLittleEndian(s[14..], MinScale);
        BinaryPrimitives.WriteSingleLittleEndian(s[18..], MaxScale);
        BinaryPrimitives.WriteInt32LittleEndian(s[22..], GrowthInterval);
        BinaryPrimitives.WriteInt32LittleEndian(s[26..], Hysteresis);
        BinaryPrimitives.WriteInt32LittleEndian(s[30..], _growthTracker);
        BinaryPrimitives.WriteInt32LittleEndian(s[34..], _hysteresisTracker);
        return bytes;
    }

    /// <summary>Restores a scaler written by <see cref="Serialize"/>.</summary>
    /// <exception cref="ArgumentException">The bytes are not a scaler of a known format version, or hold invalid settings.</exception>
    public static DynamicLossScaler Deserialize(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != SerializedBytes || bytes[0] != FormatVersion)
            throw new ArgumentException($"not a DynamicLossScaler state of format {FormatVersion} ({SerializedBytes} bytes): got {bytes.Length} bytes, version {(bytes.IsEmpty ? "none" : bytes[0])}", nameof(bytes));
        if (bytes[1] > 1)
            throw new ArgumentException($"enabled flag = {bytes[1]}: must be 0 or 1", nameof(bytes));
        bool enabled = bytes[1] == 1;
        float scale = BinaryPrimitives.ReadSingleLittleEndian(bytes[2..]);
        if (!enabled && scale != 1)
            throw new ArgumentException($"a disabled scaler's scale is 1, not {scale}", nameof(bytes));
        var scaler = new DynamicLossScaler(enabled, scale,
            BinaryPrimitives.ReadSingleLittleEndian(bytes[6..]), BinaryPrimitives.ReadSingleLittleEndian(bytes[10..]),
            BinaryPrimitives.ReadInt32LittleEndian(bytes[22..]), BinaryPrimitives.ReadInt32LittleEndian(bytes[26..]),
            BinaryPrimitives.ReadSingleLittleEndian(bytes[14..]), BinaryPrimitives.ReadSingleLittleEndian(bytes[18..]));
        int growth = BinaryPrimitives.ReadInt32LittleEndian(bytes[30..]);
        int hysteresis = BinaryPrimitives.ReadInt32LittleEndian(bytes[34..]);
        if (growth < 0 || growth >= scaler.GrowthInterval || hysteresis < 0 || hysteresis > scaler.Hysteresis)
            throw new ArgumentException($"counters out of range: growth {growth} of {scaler.GrowthInterval}, hysteresis {hysteresis} of {scaler.Hysteresis}", nameof(bytes));
        scaler._growthTracker = growth;
        scaler._hysteresisTracker = hysteresis;
        return scaler;
    }

    /// <summary>Finite and at least 2^-126, the floor backoff keeps: below it 1/scale is infinite in float.</summary>
    private static void Positive(float value, string name)
    {
        if (!(value >= SmallestScale) || !float.IsFinite(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} = {value}: must be finite and >= 2^-126 (so 1/{name} is a finite float)");
    }
}
