using NativeTensor.Cases;

namespace NativeTensor.Tests.Infrastructure;

/// <summary>The xunit verdict on a shared <see cref="IOpCase"/>: the case's own failure sentence, prefixed with the case.</summary>
public static class CaseAssert
{
    public static void Passes(IOpCase c, Device device)
    {
        if (c.Check(device) is { } failure) Assert.Fail($"{c.Op} on {device.Spec}, {c.Name}: {failure}");
    }

    /// <summary>Passes an <see cref="UnscaleCase"/> and returns the flag the device reported (the case has checked it against the reference).</summary>
    public static bool Flags(UnscaleCase c, Device device)
    {
        if (c.Check(device, out bool flag) is { } failure) Assert.Fail($"{c.Op} on {device.Spec}, {c.Name}: {failure}");
        return flag;
    }
}
