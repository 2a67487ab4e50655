using NativeTensor.Cases;
using NativeTensor.Reference;

namespace NativeTensor.Tests.Ops;

/// <summary>The xunit verdicts on the shared linalg checks of <see cref="LinalgData"/>, for tests that run a kernel outside a case.</summary>
public static class LinalgAssert
{
    public static void WithinBound(string what, float[] actual, int columns, LinalgReference.Result expected, int k, float alpha, float beta, float[]? old)
    {
        if (LinalgData.WithinBound(actual, columns, expected, k, alpha, beta, old) is { } failure) Assert.Fail($"{what}: {failure}");
    }

    public static void Symmetric(string what, float[] c, int d)
    {
        if (LinalgData.Symmetric(c, d) is { } failure) Assert.Fail($"{what}: {failure}");
    }
}
