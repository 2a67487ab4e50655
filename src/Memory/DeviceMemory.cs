namespace NativeTensor.Memory;

/// <summary>The memory of one device as <see cref="MemoryBudget.Devices"/> reports it.</summary>
/// <param name="Device">The device.</param>
/// <param name="TotalBytes">
/// Its memory in total: <see cref="NativeTensor.Device.TotalMemory"/> (CUDA <c>cuDeviceTotalMem</c>, OpenCL
/// <c>CL_DEVICE_GLOBAL_MEM_SIZE</c>); for the CPU, the budget's <see cref="MemoryBudget.TotalBytes"/>.
/// </param>
/// <param name="FreeBytes">
/// Free now: CUDA <c>cuMemGetInfo</c>; for the CPU, the budget's <see cref="MemoryBudget.AvailableBytes"/>; null for
/// OpenCL, which has no portable query, and for ILGPU, whose accelerators share no such query.
/// </param>
public sealed record DeviceMemory(Device Device, long TotalBytes, long? FreeBytes);
