/*
 * fake_nvrtc.c — an NVRTC for tests on machines without CUDA: it "compiles" any source into a short text image that
 * fake_cuda.c's cuModuleLoadData understands ("FAKECUBIN nvrtc=12.4 arch=sm_90 ..."), so the driver can refuse an
 * image from an NVRTC newer than itself, as the real one does. Build with -DMAJOR=12 -DMINOR=4 (the version it
 * reports) and -DNEWEST=90 (the newest real architecture it knows). A source that mentions no_such_name fails to
 * compile, with a log. The options of the last compile are kept for the tests (fake_last_options).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

enum { SUCCESS = 0, INVALID_INPUT = 3, INVALID_PROGRAM = 4, INVALID_OPTION = 5, COMPILATION = 6 };

typedef struct { char *source; char architecture[32]; char log[256]; char image[512]; } program;

static const int known[] = { 75, 80, 86, 89, 90, 100, 120 };
static char last_options[1024];
static long long compiles;

static int known_count(void)
{
    int n = 0;
    while (n < (int)(sizeof known / sizeof known[0]) && known[n] <= NEWEST) n++;
    return n;
}

EXPORT const char *fake_last_options(void) { return last_options; }
EXPORT long long fake_compiles(void) { return compiles; }

EXPORT const char *nvrtcGetErrorString(int result)
{
    switch (result)
    {
        case SUCCESS: return "NVRTC_SUCCESS";
        case INVALID_INPUT: return "NVRTC_ERROR_INVALID_INPUT";
        case INVALID_PROGRAM: return "NVRTC_ERROR_INVALID_PROGRAM";
        case INVALID_OPTION: return "NVRTC_ERROR_INVALID_OPTION";
        case COMPILATION: return "NVRTC_ERROR_COMPILATION";
        default: return "NVRTC_ERROR unknown";
    }
}

EXPORT int nvrtcVersion(int *major, int *minor) { *major = MAJOR; *minor = MINOR; return SUCCESS; }
EXPORT int nvrtcGetNumSupportedArchs(int *count) { *count = known_count(); return SUCCESS; }
EXPORT int nvrtcGetSupportedArchs(int *architectures) { memcpy(architectures, known, sizeof(int) * (size_t)known_count()); return SUCCESS; }

EXPORT int nvrtcCreateProgram(program **out, const char *source, const char *name, int headers, const char *const *texts, const char *const *names)
{
    (void)name; (void)texts; (void)names;
    if (out == NULL || source == NULL || headers != 0) return INVALID_INPUT;
    program *p = calloc(1, sizeof(program));
    p->source = strdup(source);
    *out = p;
    return SUCCESS;
}

EXPORT int nvrtcDestroyProgram(program **p)
{
    if (p == NULL || *p == NULL) return INVALID_PROGRAM;
    free((*p)->source);
    free(*p);
    *p = NULL;
    return SUCCESS;
}

EXPORT int nvrtcCompileProgram(program *p, int count, const char *const *options)
{
    if (p == NULL) return INVALID_PROGRAM;
    last_options[0] = 0;
    for (int i = 0; i < count; i++)
    {
        strncat(last_options, options[i], sizeof last_options - strlen(last_options) - 2);
        strcat(last_options, " ");
        if (strncmp(options[i], "--gpu-architecture=", 19) == 0)
            snprintf(p->architecture, sizeof p->architecture, "%s", options[i] + 19);
    }
    if (p->architecture[0] == 0) return INVALID_OPTION;
    __atomic_add_fetch(&compiles, 1, __ATOMIC_SEQ_CST);
    if (strstr(p->source, "no_such_name") != NULL)
    {
        snprintf(p->log, sizeof p->log, "fake(1): error: identifier \"no_such_name\" is undefined\n");
        return COMPILATION;
    }
    int cubin = strncmp(p->architecture, "sm_", 3) == 0;
    snprintf(p->image, sizeof p->image, "%s nvrtc=%d.%d arch=%s", cubin ? "FAKECUBIN" : "FAKEPTX", MAJOR, MINOR, p->architecture);
    return SUCCESS;
}

EXPORT int nvrtcGetProgramLogSize(program *p, size_t *size) { *size = strlen(p->log) + 1; return SUCCESS; }
EXPORT int nvrtcGetProgramLog(program *p, char *log) { strcpy(log, p->log); return SUCCESS; }

static int is_cubin(const program *p) { return strncmp(p->image, "FAKECUBIN", 9) == 0; }

EXPORT int nvrtcGetCUBINSize(program *p, size_t *size) { *size = is_cubin(p) ? strlen(p->image) + 1 : 0; return SUCCESS; }
EXPORT int nvrtcGetCUBIN(program *p, char *image) { if (!is_cubin(p)) return INVALID_INPUT; strcpy(image, p->image); return SUCCESS; }
EXPORT int nvrtcGetPTXSize(program *p, size_t *size) { *size = strlen(p->image) + 1; return SUCCESS; }
EXPORT int nvrtcGetPTX(program *p, char *image) { strcpy(image, p->image); return SUCCESS; }
