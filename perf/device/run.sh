#!/usr/bin/env bash
# run.sh — validates NativeTensor on a GPU machine that has the NVIDIA driver (and ideally NVRTC, compute-sanitizer and
# PyTorch) but no .NET: it runs from the unpacked device bundle (perf/device/bundle.sh) and writes everything into
# $OUT (default ./out beside it):
#   steps.txt               one line per step: name, exit code, seconds (run.sh exits 1 if any step failed)
#   environment.log         nvidia-smi, driver, NVRTC and compute capability, CPU, PyTorch
#   tests.log, tests.xml,   the CUDA suites (every Cuda* class, the KV cache and device tests, the fake-driver and
#   tests.junit.xml         compile checks) and every Ilgpu* suite (on ilgpu:cuda:0) with NATIVETENSOR_REQUIRE=cuda,ilgpu:
#                           a skipped CUDA or ILGPU test is a failure here
#   memcheck.log            compute-sanitizer memcheck over perf's validation of every op on the device, one launch at
#                           a time (NATIVETENSOR_CUDA_SYNC=1) so a fault names its kernel
#   racecheck.log           compute-sanitizer racecheck over the same validation (the shared-memory kernels' races)
#   perf.log, perf-cuda.md  perf on the device and on ILGPU's CUDA accelerator on the same GPU: validation of every op,
#                           every section's table beside the peers, and the table of ILGPU C# vs CUDA C per op
# Each step has its own time limit, so one hang cannot lose the rest; together they take at most 9 minutes.
#
# Settings (environment):
#   OUT                          where results go
#   NATIVETENSOR_REQUIRE         default cuda,ilgpu; set it empty for a dry run on a machine without a GPU
#   NATIVETENSOR_BUNDLE_DEVICE   the device perf and the sanitizers use (default cuda; opencl for a dry run on PoCL)
#   NATIVETENSOR_BUNDLE_ILGPU    the ILGPU device perf times beside it (default ilgpu:cuda when the device is cuda; empty: none)
#   NATIVETENSOR_BUNDLE_TESTS    cuda (default) or all: every suite, CPU and OpenCL included (CI runs those anyway); or
#                                xunit class patterns, space-separated, for a short focused run (e.g. "*.CudaAttention*")
#   NATIVETENSOR_TIME_SCALE      multiplies every step's limit (default 1; a 2-core machine without a GPU wants 4)
#   NATIVETENSOR_BUNDLE_STEPS    the steps to run (default "environment tests sanitizers perf"), to rerun one after a fix
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/out}
mkdir -p "$OUT"
tests="$here/tests/NativeTensor.Tests"
perf="$here/perf/NativeTensor.Perf"
device=${NATIVETENSOR_BUNDLE_DEVICE:-cuda}
scale=${NATIVETENSOR_TIME_SCALE:-1}
export NATIVETENSOR_REQUIRE=${NATIVETENSOR_REQUIRE-cuda,ilgpu}
if [ "${device%%:*}" = cuda ]; then ilgpu=${NATIVETENSOR_BUNDLE_ILGPU-ilgpu:cuda}; else ilgpu=${NATIVETENSOR_BUNDLE_ILGPU-}; fi
# The machine may have no ICU; nothing here depends on culture.
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
steps=" ${NATIVETENSOR_BUNDLE_STEPS:-environment tests sanitizers perf} "
echo "# $(date -u +%FT%TZ):$steps" >> "$OUT/steps.txt"   # appended to: a rerun of one step keeps the others' lines
failed=0
wants() { [[ "$steps" == *" $1 "* ]]; }

# step NAME LIMIT_SECONDS COMMAND...: runs COMMAND with its output in $OUT/NAME.log, killed past the (scaled) limit.
step() {
  local name=$1 limit=$(( $2 * scale )) start rc
  shift 2
  echo "== $name (at most ${limit} s)"
  start=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 124 ] && echo "(killed after $limit s)" >> "$OUT/$name.log"
  echo "$name rc=$rc $(( $(date +%s) - start ))s" | tee -a "$OUT/steps.txt"
  tail -n 5 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || failed=1
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

export -f environment
export here
wants environment && step environment 20 bash -c environment

# The suites that run on CUDA: every Cuda* class, every Ilgpu* class (ILGPU's CUDA accelerator is the first ILGPU device
# where there is a GPU), and the classes with CUDA rows of their own. (xunit takes a wildcard only at either end of a filter.)
case "${NATIVETENSOR_BUNDLE_TESTS:-cuda}" in
  all) selection=() ;;
  cuda) selection=(-class "*.Cuda*" -class "*.Ilgpu*" -class "NativeTensor.Tests.Memory.KvCacheTests" \
                   -class "NativeTensor.Tests.Core.DeviceTests" -class "NativeTensor.Tests.Runtime.KernelCudaCompileTests") ;;
  *) read -ra patterns <<< "$NATIVETENSOR_BUNDLE_TESTS"   # split on spaces without expanding the patterns as globs
     selection=(); for pattern in "${patterns[@]}"; do selection+=(-class "$pattern"); done ;;
esac
wants tests && step tests 170 "$tests" "${selection[@]}" -xml "$OUT/tests.xml" -junit "$OUT/tests.junit.xml"

# Every op's validation on the device under the sanitizers, one launch at a time so a fault names its kernel.
if ! wants sanitizers; then
  :
elif command -v compute-sanitizer >/dev/null; then
  step memcheck 90 env NATIVETENSOR_CUDA_SYNC=1 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 \
    "$perf" validate --device "$device" --out "$OUT/memcheck-validate.md"
  step racecheck 60 env NATIVETENSOR_CUDA_SYNC=1 compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$perf" validate --device "$device" --out "$OUT/racecheck-validate.md"
else
  echo "sanitizers rc=127 0s (compute-sanitizer is not on PATH)" | tee -a "$OUT/steps.txt"
fi

# Perf on the device (and ILGPU's kernels on the same GPU): validates every op, then times each section beside the peers.
wants perf && step perf 200 "$perf" all --device "$device${ilgpu:+,$ilgpu}" --out "$OUT/perf-$device.md"

echo "== done: $OUT"
cat "$OUT/steps.txt"
exit "$failed"
