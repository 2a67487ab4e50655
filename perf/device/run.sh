#!/usr/bin/env bash
# run.sh — validates NativeTensor on a GPU machine that has the NVIDIA driver (and ideally NVRTC, compute-sanitizer and
# PyTorch) but no .NET: it runs from the unpacked device bundle (perf/device/bundle.sh) and writes everything into
# $OUT (default ./out beside it):
#   steps.txt               one line per step: name, exit code, seconds
#   environment.log         nvidia-smi, driver, NVRTC and compute capability, CPU, PyTorch
#   tests.log, tests.xml,   every test suite with NATIVETENSOR_REQUIRE=cuda (a skipped CUDA test is a failure here),
#   tests.junit.xml         its summary and machine-readable reports
#   memcheck.log            compute-sanitizer memcheck over the CUDA suites, synchronising after each launch
#   racecheck.log           compute-sanitizer racecheck over the suites of the kernels that use shared memory
#   perf.log, perf-cuda.md  perf on cuda: validation of every op, then every section's table beside the PyTorch peers
# Each step has its own time limit, so one hang cannot lose the rest; together they stay under 9 minutes.
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/out}
mkdir -p "$OUT"
tests="$here/tests/NativeTensor.Tests"
perf="$here/perf/NativeTensor.Perf"
export NATIVETENSOR_REQUIRE=${NATIVETENSOR_REQUIRE-cuda}
export DOTNET_CLI_TELEMETRY_OPTOUT=1
: > "$OUT/steps.txt"

# step NAME LIMIT_SECONDS COMMAND...: runs COMMAND with its output in $OUT/NAME.log, killed past the limit.
step() {
  local name=$1 limit=$2 start rc
  shift 2
  echo "== $name (at most ${limit} s)"
  start=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 124 ] && echo "(killed after $limit s)" >> "$OUT/$name.log"
  echo "$name rc=$rc $(( $(date +%s) - start ))s" | tee -a "$OUT/steps.txt"
  tail -n 5 "$OUT/$name.log"
}

environment() {
  echo "bundle commit: $(cat "$here/COMMIT" 2>/dev/null)"
  date -u
  nvidia-smi || echo "nvidia-smi: not found"
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
  echo "--- libraries"
  ldconfig -p | grep -E 'libcuda\.so|libnvrtc\.so' || true
  ls -d /usr/local/cuda*/lib64/libnvrtc.so* 2>/dev/null || true
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  command -v compute-sanitizer >/dev/null && compute-sanitizer --version | head -n 2
  echo "--- NVRTC and driver versions, as the runtime reads them"
  python3 - <<'PY' || true
import ctypes, glob
for name in ["libnvrtc.so.13", "libnvrtc.so.12"] + sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so.1[23]")):
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        continue
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    print(f"{name}: NVRTC {major.value}.{minor.value}")
driver = ctypes.c_int()
ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(driver))
print(f"libcuda.so.1: CUDA {driver.value // 1000}.{driver.value % 1000 // 10} ({driver.value})")
PY
  echo "--- CPU"
  grep -m1 'model name' /proc/cpuinfo; nproc; free -g | head -n 2
  echo "--- PyTorch"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' || true
}

step environment 30 environment

# Every suite: CPU and OpenCL where present, CUDA required.
step tests 210 "$tests" -parallel collections -xml "$OUT/tests.xml" -junit "$OUT/tests.junit.xml"

# The CUDA suites again under the sanitizers, one launch at a time so a fault names its kernel.
if command -v compute-sanitizer >/dev/null; then
  step memcheck 100 env NATIVETENSOR_CUDA_SYNC=1 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 \
    "$tests" -class "NativeTensor.Tests.*.Cuda*" -parallel none
  step racecheck 50 env NATIVETENSOR_CUDA_SYNC=1 compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$tests" -class "NativeTensor.Tests.Ops.CudaLinalg*" -class "NativeTensor.Tests.Ops.CudaMoments*" -parallel none
else
  echo "compute-sanitizer rc=127 0s (not on PATH)" | tee -a "$OUT/steps.txt"
fi

# Perf on the GPU: validates every op, then times each section beside the PyTorch peers.
step perf 150 "$perf" all --device cuda --out "$OUT/perf-cuda.md"

echo "== done: $OUT"
cat "$OUT/steps.txt"
