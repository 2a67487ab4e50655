/*
 * fake_cuda.c — a CUDA driver for tests on machines without a GPU: the entry points the CUDA backend binds, with
 * the rules the backend must obey checked and counted, and control functions (fake_*) for the tests.
 *
 * Device memory is host memory, copies are memcpy, kernels run nothing (a launch is counted and remembered).
 * Contexts follow the driver's rules: a per-thread stack moved by cuCtxPushCurrent/cuCtxPopCurrent, and every call
 * that needs a context fails with CUDA_ERROR_INVALID_CONTEXT (and counts a violation) unless the primary context is
 * current on the calling thread. Build variants (-D):
 *   ELAPSED=2  exports cuEventElapsedTime_v2 and cuEventElapsedTime (a CUDA 12.8+ driver; the default)
 *   ELAPSED=1  exports only cuEventElapsedTime (an older driver)
 *   ELAPSED=0  exports neither
 *   STUB       every entry point answers CUDA_ERROR_STUB_LIBRARY, as the toolkit's libcuda.so stub does
 * Each test loads its own copy of the file, so the counters below belong to that test alone.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ELAPSED
#define ELAPSED 2
#endif

#define EXPORT __attribute__((visibility("default")))
typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum { SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, STUB_LIBRARY = 34, INVALID_DEVICE = 101, INVALID_IMAGE = 200,
       INVALID_CONTEXT = 201, UNSUPPORTED_PTX_VERSION = 222, NOT_FOUND = 500, ILLEGAL_ADDRESS = 700 };

/* ---- state ---------------------------------------------------------------------------------------------------- */

static int driver_version = 12040;
static int pools_supported = 1;
static int primary_context;            /* its address is the primary CUcontext */
static int foreign_context;            /* its address stands for a context of some other library */
static __thread void *context_stack[64];
static __thread int context_depth;
static long long counters[32];
static int fault_next_launch;
static int stream_faulted;
static long long event_ticks;
static char last_launch[256];
static const long long total_memory = 80LL << 30;

enum { LIVE_ALLOCATIONS, LIVE_BYTES, STREAM_SYNCS, LAUNCHES, ASYNC_ALLOCS, ASYNC_FREES, SYNC_ALLOCS, SYNC_FREES, WRONG_CONTEXT,
       PRIMARY_REFS, STREAMS, EVENTS, MODULES, ELAPSED_V1, ELAPSED_V2, HOST_BLOCKS, COUNTER_COUNT };
static const char *const counter_names[COUNTER_COUNT] = {
    "live_allocations", "live_bytes", "stream_syncs", "launches", "async_allocs", "async_frees", "sync_allocs", "sync_frees",
    "wrong_context", "primary_refs", "streams", "events", "modules", "elapsed_v1", "elapsed_v2", "host_blocks" };

static void add(int counter, long long amount) { __atomic_add_fetch(&counters[counter], amount, __ATOMIC_SEQ_CST); }

#ifdef STUB
#define ENTER return STUB_LIBRARY
#else
#define ENTER do { } while (0)
#endif

/* The calling thread must have the primary context on top of its stack. */
#define NEED_CONTEXT do { ENTER; if (context_depth == 0 || context_stack[context_depth - 1] != &primary_context) \
                               { add(WRONG_CONTEXT, 1); return INVALID_CONTEXT; } } while (0)

/* A device allocation: a header before the bytes keeps its size; the bytes are 256-byte aligned as the driver's are. */
typedef struct { size_t size; char pad[248]; } block_header;

static CUresult allocate(CUdeviceptr *pointer, size_t bytes)
{
    if (pointer == NULL || bytes == 0) return INVALID_VALUE;
    if ((long long)bytes > total_memory - counters[LIVE_BYTES]) return OUT_OF_MEMORY;
    block_header *block = aligned_alloc(256, sizeof(block_header) + ((bytes + 255) & ~(size_t)255));
    if (block == NULL) return OUT_OF_MEMORY;
    block->size = bytes;
    *pointer = (CUdeviceptr)(uintptr_t)(block + 1);
    add(LIVE_ALLOCATIONS, 1);
    add(LIVE_BYTES, (long long)bytes);
    return SUCCESS;
}

static CUresult release(CUdeviceptr pointer)
{
    if (pointer == 0) return INVALID_VALUE;
    block_header *block = (block_header *)(uintptr_t)pointer - 1;
    add(LIVE_ALLOCATIONS, -1);
    add(LIVE_BYTES, -(long long)block->size);
    free(block);
    return SUCCESS;
}

/* ---- control, for the tests ----------------------------------------------------------------------------------- */

EXPORT void fake_set_driver_version(int version) { driver_version = version; }
EXPORT void fake_set_pools(int supported) { pools_supported = supported; }
EXPORT void fake_fault_next_launch(void) { fault_next_launch = 1; }
EXPORT void *fake_current(void) { return context_depth == 0 ? NULL : context_stack[context_depth - 1]; }
EXPORT void *fake_foreign(void) { return &foreign_context; }
EXPORT void fake_push_foreign(void) { context_stack[context_depth++] = &foreign_context; }
EXPORT void fake_pop(void) { if (context_depth > 0) context_depth--; }
EXPORT const char *fake_last_launch(void) { return last_launch; }

EXPORT long long fake_counter(const char *name)
{
    for (int i = 0; i < COUNTER_COUNT; i++)
        if (strcmp(name, counter_names[i]) == 0) return __atomic_load_n(&counters[i], __ATOMIC_SEQ_CST);
    return -1;
}

/* ---- the driver API ------------------------------------------------------------------------------------------- */

EXPORT CUresult cuGetErrorName(CUresult error, const char **name)
{
    ENTER;
    switch (error)
    {
        case SUCCESS: *name = "CUDA_SUCCESS"; return SUCCESS;
        case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return SUCCESS;
        case OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; return SUCCESS;
        case STUB_LIBRARY: *name = "CUDA_ERROR_STUB_LIBRARY"; return SUCCESS;
        case INVALID_DEVICE: *name = "CUDA_ERROR_INVALID_DEVICE"; return SUCCESS;
        case INVALID_IMAGE: *name = "CUDA_ERROR_INVALID_IMAGE"; return SUCCESS;
        case INVALID_CONTEXT: *name = "CUDA_ERROR_INVALID_CONTEXT"; return SUCCESS;
        case UNSUPPORTED_PTX_VERSION: *name = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"; return SUCCESS;
        case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return SUCCESS;
        case ILLEGAL_ADDRESS: *name = "CUDA_ERROR_ILLEGAL_ADDRESS"; return SUCCESS;
        default: *name = NULL; return INVALID_VALUE;
    }
}

EXPORT CUresult cuInit(unsigned int flags) { ENTER; return flags == 0 ? SUCCESS : INVALID_VALUE; }
EXPORT CUresult cuDriverGetVersion(int *version) { ENTER; *version = driver_version; return SUCCESS; }
EXPORT CUresult cuDeviceGetCount(int *count) { ENTER; *count = 1; return SUCCESS; }
EXPORT CUresult cuDeviceGet(int *device, int ordinal) { ENTER; if (ordinal != 0) return INVALID_DEVICE; *device = 0; return SUCCESS; }

EXPORT CUresult cuDeviceGetName(char *name, int length, int device)
{
    ENTER;
    if (device != 0) return INVALID_DEVICE;
    snprintf(name, (size_t)length, "Fake GPU (tests)");
    return SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *value, int attribute, int device)
{
    ENTER;
    if (device != 0) return INVALID_DEVICE;
    switch (attribute)
    {
        case 16: *value = 132; return SUCCESS;   /* multiprocessors */
        case 39: *value = 2048; return SUCCESS;  /* threads per multiprocessor */
        case 75: *value = 9; return SUCCESS;     /* compute capability 9.0 */
        case 76: *value = 0; return SUCCESS;
        case 115: *value = pools_supported; return SUCCESS;
        default: *value = 0; return SUCCESS;
    }
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, int device) { ENTER; if (device != 0) return INVALID_DEVICE; *bytes = (size_t)total_memory; return SUCCESS; }

EXPORT CUresult cuDevicePrimaryCtxRetain(void **context, int device)
{
    ENTER;
    if (device != 0) return INVALID_DEVICE;
    add(PRIMARY_REFS, 1);
    *context = &primary_context;
    return SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(int device) { ENTER; if (device != 0) return INVALID_DEVICE; add(PRIMARY_REFS, -1); return SUCCESS; }

EXPORT CUresult cuCtxPushCurrent_v2(void *context)
{
    ENTER;
    if (context == NULL || context_depth == 64) return INVALID_VALUE;
    context_stack[context_depth++] = context;
    return SUCCESS;
}

/* The backend pops only what it pushed: popping another library's context, or an empty stack, is a violation. */
EXPORT CUresult cuCtxPopCurrent_v2(void **context)
{
    ENTER;
    if (context_depth == 0) { add(WRONG_CONTEXT, 1); return INVALID_CONTEXT; }
    void *top = context_stack[--context_depth];
    if (top != &primary_context) add(WRONG_CONTEXT, 1);
    if (context != NULL) *context = top;
    return SUCCESS;
}

EXPORT CUresult cuMemGetInfo_v2(size_t *available, size_t *total)
{
    NEED_CONTEXT;
    *available = (size_t)(total_memory - counters[LIVE_BYTES]);
    *total = (size_t)total_memory;
    return SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *pointer, size_t bytes) { NEED_CONTEXT; add(SYNC_ALLOCS, 1); return allocate(pointer, bytes); }
EXPORT CUresult cuMemFree_v2(CUdeviceptr pointer) { NEED_CONTEXT; add(SYNC_FREES, 1); return release(pointer); }

EXPORT CUresult cuMemAllocAsync(CUdeviceptr *pointer, size_t bytes, void *stream)
{
    NEED_CONTEXT;
    if (!pools_supported) return 801;   /* CUDA_ERROR_NOT_SUPPORTED */
    if (stream == NULL) return INVALID_VALUE;
    add(ASYNC_ALLOCS, 1);
    return allocate(pointer, bytes);
}

EXPORT CUresult cuMemFreeAsync(CUdeviceptr pointer, void *stream)
{
    NEED_CONTEXT;
    if (stream == NULL) return INVALID_VALUE;
    add(ASYNC_FREES, 1);
    return release(pointer);
}

EXPORT CUresult cuMemAllocHost_v2(void **pointer, size_t bytes)
{
    NEED_CONTEXT;
    *pointer = malloc(bytes);
    if (*pointer == NULL) return OUT_OF_MEMORY;
    add(HOST_BLOCKS, 1);
    return SUCCESS;
}

EXPORT CUresult cuMemFreeHost(void *pointer) { NEED_CONTEXT; free(pointer); add(HOST_BLOCKS, -1); return SUCCESS; }

EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr destination, const void *source, size_t bytes, void *stream)
{
    NEED_CONTEXT;
    memcpy((void *)(uintptr_t)destination, source, bytes);
    return stream == NULL ? INVALID_VALUE : SUCCESS;
}

EXPORT CUresult cuMemcpyDtoHAsync_v2(void *destination, CUdeviceptr source, size_t bytes, void *stream)
{
    NEED_CONTEXT;
    memcpy(destination, (const void *)(uintptr_t)source, bytes);
    return stream == NULL ? INVALID_VALUE : SUCCESS;
}

EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr destination, CUdeviceptr source, size_t bytes, void *stream)
{
    NEED_CONTEXT;
    memmove((void *)(uintptr_t)destination, (const void *)(uintptr_t)source, bytes);
    return stream == NULL ? INVALID_VALUE : SUCCESS;
}

EXPORT CUresult cuMemsetD32Async(CUdeviceptr destination, unsigned int value, size_t count, void *stream)
{
    NEED_CONTEXT;
    unsigned int *words = (unsigned int *)(uintptr_t)destination;
    for (size_t i = 0; i < count; i++) words[i] = value;
    return stream == NULL ? INVALID_VALUE : SUCCESS;
}

/* Images come from fake_nvrtc.c: "FAKECUBIN nvrtc=M.m arch=..." or "FAKEPTX nvrtc=M.m arch=...". The driver loads
 * CUBIN of its own major or older, and PTX no newer than itself, as the real one does. */
EXPORT CUresult cuModuleLoadData(void **module, const void *image)
{
    NEED_CONTEXT;
    int major = 0, minor = 0;
    const char *text = image;
    int cubin = strncmp(text, "FAKECUBIN ", 10) == 0;
    if (!cubin && strncmp(text, "FAKEPTX ", 8) != 0) return INVALID_IMAGE;
    const char *version = strstr(text, "nvrtc=");
    if (version == NULL || sscanf(version, "nvrtc=%d.%d", &major, &minor) != 2) return INVALID_IMAGE;
    int driver_major = driver_version / 1000, driver_minor = driver_version % 1000 / 10;
    if (cubin && major > driver_major) return INVALID_IMAGE;
    if (!cubin && (major > driver_major || (major == driver_major && minor > driver_minor))) return UNSUPPORTED_PTX_VERSION;
    *module = malloc(16);
    add(MODULES, 1);
    return SUCCESS;
}

EXPORT CUresult cuModuleUnload(void *module) { NEED_CONTEXT; free(module); add(MODULES, -1); return SUCCESS; }

/* A function handle is a copy of its name, kept for the process's life (a test loads a handful). */
EXPORT CUresult cuModuleGetFunction(void **function, void *module, const char *name)
{
    NEED_CONTEXT;
    if (module == NULL || name == NULL) return INVALID_VALUE;
    *function = strdup(name);
    return SUCCESS;
}

/* Attributes by name: matmul and syrk kernels claim a heavier footprint than the rest, so a test sees which it read. */
EXPORT CUresult cuFuncGetAttribute(int *value, int attribute, void *function)
{
    NEED_CONTEXT;
    int heavy = strncmp(function, "matmul", 6) == 0 || strncmp(function, "syrk", 4) == 0;
    switch (attribute)
    {
        case 0: *value = 256; return SUCCESS;                  /* MAX_THREADS_PER_BLOCK */
        case 1: *value = heavy ? 16640 : 0; return SUCCESS;    /* SHARED_SIZE_BYTES */
        case 3: *value = heavy ? 8 : 0; return SUCCESS;        /* LOCAL_SIZE_BYTES */
        case 4: *value = heavy ? 128 : 24; return SUCCESS;     /* NUM_REGS */
        default: return INVALID_VALUE;
    }
}

EXPORT CUresult cuLaunchKernel(void *function, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
    unsigned int bz, unsigned int shared, void *stream, void **parameters, void **extra)
{
    NEED_CONTEXT;
    (void)shared; (void)extra;
    if (function == NULL || stream == NULL || parameters == NULL || gx == 0 || gy == 0 || gz == 0 || bx * by * bz > 1024) return INVALID_VALUE;
    snprintf(last_launch, sizeof last_launch, "%s grid %u x %u x %u block %u x %u x %u", (const char *)function, gx, gy, gz, bx, by, bz);
    add(LAUNCHES, 1);
    if (fault_next_launch) { fault_next_launch = 0; stream_faulted = 1; }
    return SUCCESS;
}

EXPORT CUresult cuStreamCreate(void **stream, unsigned int flags)
{
    NEED_CONTEXT;
    if (flags != 1) return INVALID_VALUE;   /* the backend's stream is non-blocking */
    *stream = malloc(16);
    add(STREAMS, 1);
    return SUCCESS;
}

/* A fault raised by a launch surfaces here, at the next synchronisation, as a real asynchronous error does. */
EXPORT CUresult cuStreamSynchronize(void *stream)
{
    NEED_CONTEXT;
    if (stream == NULL) return INVALID_VALUE;
    add(STREAM_SYNCS, 1);
    if (stream_faulted) { stream_faulted = 0; return ILLEGAL_ADDRESS; }
    return SUCCESS;
}

EXPORT CUresult cuStreamDestroy_v2(void *stream) { NEED_CONTEXT; free(stream); add(STREAMS, -1); return SUCCESS; }

EXPORT CUresult cuEventCreate(void **event, unsigned int flags)
{
    NEED_CONTEXT;
    (void)flags;
    *event = calloc(1, sizeof(long long));
    add(EVENTS, 1);
    return SUCCESS;
}

/* Each record is one tick later than the last, and a tick is half a millisecond. */
EXPORT CUresult cuEventRecord(void *event, void *stream)
{
    NEED_CONTEXT;
    if (stream == NULL) return INVALID_VALUE;
    *(long long *)event = __atomic_add_fetch(&event_ticks, 1, __ATOMIC_SEQ_CST);
    return SUCCESS;
}

EXPORT CUresult cuEventSynchronize(void *event) { NEED_CONTEXT; return event == NULL ? INVALID_VALUE : SUCCESS; }
EXPORT CUresult cuEventDestroy_v2(void *event) { NEED_CONTEXT; free(event); add(EVENTS, -1); return SUCCESS; }

#if ELAPSED >= 1
static CUresult elapsed(float *milliseconds, void *start, void *end)
{
    NEED_CONTEXT;
    *milliseconds = 0.5f * (float)(*(long long *)end - *(long long *)start);
    return SUCCESS;
}
#endif

#if ELAPSED >= 1
EXPORT CUresult cuEventElapsedTime(float *milliseconds, void *start, void *end) { add(ELAPSED_V1, 1); return elapsed(milliseconds, start, end); }
#endif
#if ELAPSED >= 2
EXPORT CUresult cuEventElapsedTime_v2(float *milliseconds, void *start, void *end) { add(ELAPSED_V2, 1); return elapsed(milliseconds, start, end); }
#endif
