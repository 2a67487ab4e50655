namespace NativeTensor;

/// <summary>
/// A failure inside a backend: a native call that returned an error (the message carries the API's own
/// error name, e.g. <c>CL_OUT_OF_RESOURCES</c> or <c>CUDA_ERROR_ILLEGAL_ADDRESS</c>), a kernel that did not
/// build (the message carries the build log), an allocation that did not fit, or a device-side bounds flag.
/// Bad arguments are refused earlier with <see cref="ArgumentException"/> and its kin.
/// </summary>
public sealed class NativeTensorException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public NativeTensorException(string message) : base(message) { }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    public NativeTensorException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The backend's own error name or code (<c>CL_BUILD_PROGRAM_FAILURE</c>), when a native call failed.</summary>
    public string? ErrorName { get; init; }
}
