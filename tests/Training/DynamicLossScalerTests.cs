using NativeTensor.Training;

namespace NativeTensor.Tests.Training;

public sealed class DynamicLossScalerTests
{
    [Fact]
    public void Defaults_are_pytorch_gradscaler_s()
    {
        var scaler = new DynamicLossScaler();
        Assert.Equal(65536f, scaler.Scale);
        Assert.Equal(2f, scaler.GrowthFactor);
        Assert.Equal(0.5f, scaler.BackoffFactor);
        Assert.Equal(2000, scaler.GrowthInterval);
        Assert.Equal(1, scaler.Hysteresis);
        Assert.True(scaler.IsEnabled);
        Assert.Equal(1f / 65536, scaler.InverseScale);
    }

    /// <summary>A step-by-step replay of torch.amp's update rule (_amp_update_scale_), written out independently.</summary>
    [Fact]
    public void Updates_follow_pytorch_step_by_step()
    {
        var random = new Random(11);
        var scaler = new DynamicLossScaler(initialScale: 1024, growthInterval: 5);
        float scale = 1024;
        int tracker = 0;
        for (int step = 0; step < 2000; step++)
        {
            bool overflow = random.NextDouble() < 0.15;
            bool apply = scaler.Update(overflow);
            if (overflow) { scale *= 0.5f; tracker = 0; }
            else if (++tracker == 5) { if (float.IsFinite(scale * 2)) scale *= 2; tracker = 0; }
            Assert.Equal(!overflow, apply);
            Assert.Equal(scale, scaler.Scale);
            Assert.Equal(tracker, scaler.GrowthTracker);
        }
    }

    [Fact]
    public void The_scale_never_grows_to_infinity_nor_past_its_ceiling()
    {
        var scaler = new DynamicLossScaler(initialScale: 2e38f, growthInterval: 1);
        Assert.True(scaler.Update(false));
        Assert.Equal(2e38f, scaler.Scale);
        var capped = new DynamicLossScaler(initialScale: 100, growthInterval: 1, maxScale: 300);
        capped.Update(false);
        capped.Update(false);
        Assert.Equal(300f, capped.Scale);
    }

    [Fact]
    public void The_scale_never_backs_off_below_its_floor_or_to_zero()
    {
        var floored = new DynamicLossScaler(initialScale: 8, minScale: 2);
        for (int i = 0; i < 5; i++) floored.Update(true);
        Assert.Equal(2f, floored.Scale);
        var unfloored = new DynamicLossScaler(initialScale: 1);
        for (int i = 0; i < 400; i++) unfloored.Update(true);
        Assert.True(unfloored.Scale > 0);
        Assert.True(float.IsFinite(unfloored.InverseScale));
    }

    [Fact]
    public void Hysteresis_tolerates_overflows_until_it_is_used_up_and_growth_restores_it()
    {
        var scaler = new DynamicLossScaler(initialScale: 64, growthInterval: 3, hysteresis: 3);
        Assert.False(scaler.Update(true));
        Assert.False(scaler.Update(true));
        Assert.Equal(64f, scaler.Scale);                 // two tolerated, both skipped
        Assert.False(scaler.Update(true));
        Assert.Equal(32f, scaler.Scale);                 // the third backs off
        Assert.False(scaler.Update(true));
        Assert.Equal(16f, scaler.Scale);                 // and every one after it, until a growth
        for (int i = 0; i < 3; i++) Assert.True(scaler.Update(false));
        Assert.Equal(32f, scaler.Scale);
        Assert.Equal(3, scaler.HysteresisTracker);
        Assert.False(scaler.Update(true));
        Assert.Equal(32f, scaler.Scale);
    }

    [Fact]
    public void Disabled_keeps_the_scale_at_one_and_still_skips_non_finite_steps()
    {
        var scaler = DynamicLossScaler.Disabled();
        Assert.False(scaler.IsEnabled);
        Assert.False(scaler.Update(true));
        Assert.True(scaler.Update(false));
        Assert.Equal(1f, scaler.Scale);
        Assert.Equal(1f, scaler.InverseScale);
    }

    [Fact]
    public void State_round_trips_through_its_serialised_form()
    {
        var scaler = new DynamicLossScaler(initialScale: 4096, growthFactor: 3, backoffFactor: 0.25f, growthInterval: 7, hysteresis: 2, minScale: 1, maxScale: 1e6f);
        var random = new Random(5);
        for (int i = 0; i < 50; i++) scaler.Update(random.NextDouble() < 0.2);
        var copy = DynamicLossScaler.Deserialize(scaler.Serialize());
        Assert.Equal(scaler.Serialize(), copy.Serialize());
        for (int i = 0; i < 100; i++)
        {
            bool overflow = random.NextDouble() < 0.2;
            Assert.Equal(scaler.Update(overflow), copy.Update(overflow));
            Assert.Equal(scaler.Scale, copy.Scale);
        }
        Assert.False(DynamicLossScaler.Deserialize(DynamicLossScaler.Disabled().Serialize()).IsEnabled);
    }

    [Fact]
    public void Corrupt_states_are_refused()
    {
        byte[] good = new DynamicLossScaler().Serialize();
        Assert.Throws<ArgumentException>(() => DynamicLossScaler.Deserialize(good[..^1]));
        byte[] version = (byte[])good.Clone();
        version[0] = 99;
        Assert.Contains("version 99", Assert.Throws<ArgumentException>(() => DynamicLossScaler.Deserialize(version)).Message);
        byte[] counter = (byte[])good.Clone();
        BitConverter.TryWriteBytes(counter.AsSpan(30), 5000);
        Assert.Throws<ArgumentException>(() => DynamicLossScaler.Deserialize(counter));
        byte[] flag = (byte[])good.Clone();
        flag[1] = 2;
        Assert.Throws<ArgumentException>(() => DynamicLossScaler.Deserialize(flag));
        byte[] disabledScaled = DynamicLossScaler.Disabled().Serialize();
        BitConverter.TryWriteBytes(disabledScaled.AsSpan(2), 65536f);
        Assert.Throws<ArgumentException>(() => DynamicLossScaler.Deserialize(disabledScaled));
        byte[] scale = (byte[])good.Clone();
        BitConverter.TryWriteBytes(scale.AsSpan(2), float.NaN);
        Assert.Throws<ArgumentOutOfRangeException>(() => DynamicLossScaler.Deserialize(scale));
    }

    [Theory]
    [InlineData("initialScale", 0f)]
    [InlineData("initialScale", float.PositiveInfinity)]
    [InlineData("initialScale", float.NaN)]
    [InlineData("initialScale", 1e-40f)]   // subnormal: 1/scale would be infinite
    [InlineData("maxScale", 1e-40f)]
    [InlineData("minScale", 1e-40f)]
    [InlineData("growthFactor", 1f)]
    [InlineData("backoffFactor", 1f)]
    [InlineData("backoffFactor", 0f)]
    [InlineData("minScale", -1f)]
    [InlineData("maxScale", 0f)]
    [InlineData("growthInterval", 0f)]
    [InlineData("hysteresis", 0f)]
    public void Bad_settings_are_refused_naming_the_setting(string name, float value)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => name switch
        {
            "initialScale" => new DynamicLossScaler(initialScale: value),
            "growthFactor" => new DynamicLossScaler(growthFactor: value),
            "backoffFactor" => new DynamicLossScaler(backoffFactor: value),
            "minScale" => new DynamicLossScaler(minScale: value),
            "maxScale" => new DynamicLossScaler(maxScale: value),
            "growthInterval" => new DynamicLossScaler(growthInterval: (int)value),
            _ => new DynamicLossScaler(hysteresis: (int)value),
        });
        Assert.Equal(name, e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScaler(initialScale: 10, minScale: 20, maxScale: 30));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScaler(minScale: 5, maxScale: 4));
    }
}
