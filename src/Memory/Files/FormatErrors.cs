namespace NativeTensor.Memory.Files;

/// <summary>The one shape of every refusal of a tensor file: <c>InvalidDataException("path: rule")</c>.</summary>
internal static class FormatErrors
{
    public static InvalidDataException Refuse(string path, string rule) => new($"{path}: {rule}");
}
