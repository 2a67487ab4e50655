using NativeTensor.Cases;

namespace NativeTensor.Tests.Ops;

/// <summary>The assertions every optimizer test makes on a <see cref="StepCase.Outcome"/>: the shared case's own judgement.</summary>
public static class StepAssert
{
    /// <summary>Fails with <see cref="StepCase.Judge"/>'s sentence when the outcome leaves the derived bound.</summary>
    public static void WithinBound(StepCase c, StepCase.Outcome o)
    {
        if (c.Judge(o) is { } failure) Assert.Fail($"{c.Name}: {failure}");
    }
}
