using System.Runtime.InteropServices;

namespace NativeTensor.Runtime.OpenCl;

/// <summary>
/// The OpenCL 1.2 entry points this backend uses, bound through the ICD loader (<c>libOpenCL.so.1</c>, resolved by
/// <see cref="NativeLibraries"/>). Source-generated <see cref="LibraryImportAttribute"/> wrappers, so nothing here needs
/// run-time marshalling code and trimming keeps what it must. Objects the backend owns travel as their
/// <see cref="SafeHandle"/> types, so a handle cannot be released while a call is using it; <c>cl_mem</c> and
/// <c>cl_device_id</c> travel as raw pointers (buffers are leased by the caller, root devices are never released).
/// Every call returns or writes a <c>cl_int</c> status that goes through <see cref="OpenClStatus.Check"/>.
/// </summary>
internal static unsafe partial class OpenClNative
{
    // cl_platform_info / cl_device_info
    public const uint PlatformName = 0x0902;
    public const ulong DeviceTypeAll = 0xFFFFFFFF;
    public const uint DeviceType = 0x1000;
    public const uint DeviceMaxComputeUnits = 0x1002;
    public const uint DeviceMaxWorkGroupSize = 0x1004;
    public const uint DeviceAddressBits = 0x100D;
    public const uint DeviceSingleFpConfig = 0x101B;
    public const ulong FpDenorm = 1 << 0;
    public const ulong FpCorrectlyRoundedDivideSqrt = 1 << 7;
    public const uint DeviceMaxMemAllocSize = 0x1010;
    public const uint DeviceGlobalMemSize = 0x101F;
    public const uint DeviceAvailable = 0x1027;
    public const uint DeviceCompilerAvailable = 0x1028;
    public const uint DeviceName = 0x102B;

    // contexts, queues, buffers, programs, kernels, events
    public const nint ContextPlatform = 0x1084;
    public const ulong QueueProfilingEnable = 1 << 1;
    public const ulong MemReadWrite = 1 << 0;
    public const uint ProgramBuildLog = 0x1183;
    public const uint KernelWorkGroupSize = 0x11B0;
    public const uint KernelPreferredWorkGroupSizeMultiple = 0x11B3;
    public const uint ProfilingCommandStart = 0x1282;
    public const uint ProfilingCommandEnd = 0x1283;
    public const uint True = 1;

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetPlatformIDs(uint numEntries, IntPtr* platforms, uint* numPlatforms);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetPlatformInfo(IntPtr platform, uint param, nuint size, void* value, nuint* sizeReturned);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetDeviceIDs(IntPtr platform, ulong deviceType, uint numEntries, IntPtr* devices, uint* numDevices);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetDeviceInfo(IntPtr device, uint param, nuint size, void* value, nuint* sizeReturned);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial ContextHandle clCreateContext(nint* properties, uint numDevices, IntPtr* devices, IntPtr notify, IntPtr userData, int* status);

    /// <summary>The 1.2 constructor: deprecated in 2.0 but exported by every ICD loader and driver, unlike its successor on 1.2 drivers.</summary>
    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial QueueHandle clCreateCommandQueue(ContextHandle context, IntPtr device, ulong properties, int* status);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial IntPtr clCreateBuffer(ContextHandle context, ulong flags, nuint size, void* hostPointer, int* status);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clReleaseMemObject(IntPtr memory);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clEnqueueWriteBuffer(QueueHandle queue, IntPtr buffer, uint blocking, nuint offset, nuint size, void* source,
        uint waitCount, IntPtr* waitList, IntPtr* completion);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clEnqueueReadBuffer(QueueHandle queue, IntPtr buffer, uint blocking, nuint offset, nuint size, void* destination,
        uint waitCount, IntPtr* waitList, IntPtr* completion);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clEnqueueCopyBuffer(QueueHandle queue, IntPtr source, IntPtr destination, nuint sourceOffset, nuint destinationOffset,
        nuint size, uint waitCount, IntPtr* waitList, IntPtr* completion);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clEnqueueFillBuffer(QueueHandle queue, IntPtr buffer, void* pattern, nuint patternSize, nuint offset, nuint size,
        uint waitCount, IntPtr* waitList, IntPtr* completion);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial ProgramHandle clCreateProgramWithSource(ContextHandle context, uint count, byte** strings, nuint* lengths, int* status);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clBuildProgram(ProgramHandle program, uint numDevices, IntPtr* devices, byte* options, IntPtr notify, IntPtr userData);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetProgramBuildInfo(ProgramHandle program, IntPtr device, uint param, nuint size, void* value, nuint* sizeReturned);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial KernelHandle clCreateKernel(ProgramHandle program, byte* name, int* status);

    /// <summary>Not thread-safe on one kernel object (OpenCL 1.2 appendix A.2): <c>OpenClKernel</c> serialises it.</summary>
    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clSetKernelArg(KernelHandle kernel, uint index, nuint size, void* value);

    /// <summary>A parameter's name or type name, as the source spells them; needs a program built with <c>-cl-kernel-arg-info</c>.</summary>
    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetKernelArgInfo(KernelHandle kernel, uint index, uint param, nuint size, void* value, nuint* sizeReturned);

    /// <summary>A kernel's number of parameters (<see cref="KernelNumArgs"/>) and other facts.</summary>
    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetKernelInfo(KernelHandle kernel, uint param, nuint size, void* value, nuint* sizeReturned);

    /// <summary>The names of a built program's kernels (<see cref="ProgramKernelNames"/>).</summary>
    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetProgramInfo(ProgramHandle program, uint param, nuint size, void* value, nuint* sizeReturned);

    public const uint KernelNumArgs = 0x1191;
    public const uint KernelArgTypeName = 0x1198;
    public const uint KernelArgName = 0x119A;
    public const uint ProgramKernelNames = 0x1168;

    /// <summary>A kernel's largest group on this device (which may be below the device's maximum) and its preferred group-size multiple (the warp or wavefront).</summary>
    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetKernelWorkGroupInfo(KernelHandle kernel, IntPtr device, uint param, nuint size, void* value, nuint* sizeReturned);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clEnqueueNDRangeKernel(QueueHandle queue, KernelHandle kernel, uint dimensions, nuint* globalOffset,
        nuint* globalSize, nuint* localSize, uint waitCount, IntPtr* waitList, IntPtr* completion);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clFinish(QueueHandle queue);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clEnqueueMarkerWithWaitList(QueueHandle queue, uint waitCount, IntPtr* waitList, IntPtr* marker);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clGetEventProfilingInfo(EventHandle completion, uint param, nuint size, void* value, nuint* sizeReturned);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clWaitForEvents(uint count, IntPtr* events);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clReleaseEvent(IntPtr completion);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clReleaseKernel(IntPtr kernel);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clReleaseProgram(IntPtr program);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clReleaseCommandQueue(IntPtr queue);

    [LibraryImport(NativeLibraries.OpenCl)]
    public static partial int clReleaseContext(IntPtr context);
}
