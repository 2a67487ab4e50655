#!/usr/bin/env bash
# Builds the device bundle: everything a GPU machine without .NET needs to validate NativeTensor in one run.
#
#   bash perf/device/bundle.sh [OUT_DIR]      (default artifacts/device)
#
# The archive (nativetensor-device.tar.xz, at most 60 MiB) holds:
#   tests/   the test suites, published self-contained for linux-x64 (xunit.v3: the assembly runs itself)
#   perf/    perf, published self-contained and trimmed, with the PyTorch and NumPy peer scripts beside it
#   run.sh   the run on the device (see perf/device/run.sh): environment, tests with CUDA required,
#            compute-sanitizer, perf with its peers, everything written under $OUT
# On the device: tar -xJf nativetensor-device.tar.xz && ./run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-artifacts/device}
limit_mib=60
rid=linux-x64

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"

echo "== publishing the tests (self-contained, $rid)"
dotnet publish tests/NativeTensor.Tests.csproj -c Release -r "$rid" --self-contained -o "$stage/tests" \
  -p:GenerateDocumentationFile=false -p:DebugType=none -nologo -v quiet
echo "== publishing perf (self-contained, trimmed, $rid)"
dotnet publish perf/NativeTensor.Perf.csproj -c Release -r "$rid" --self-contained -p:PublishTrimmed=true -o "$stage/perf" \
  -p:GenerateDocumentationFile=false -p:DebugType=none -nologo -v quiet

cp perf/device/run.sh "$stage/run.sh"
chmod +x "$stage/run.sh" "$stage/tests/NativeTensor.Tests" "$stage/perf/NativeTensor.Perf"
git rev-parse HEAD > "$stage/COMMIT" 2>/dev/null || echo unknown > "$stage/COMMIT"

archive="$out/nativetensor-device.tar.xz"
echo "== packing $archive"
tar -C "$stage" -cf - . | xz -T0 -6 > "$archive"
bytes=$(stat -c %s "$archive")
awk -v f="$archive" -v b="$bytes" -v l="$limit_mib" 'BEGIN { printf "%s: %.1f MiB (limit %d MiB)\n", f, b / 1048576, l }'
if [ "$bytes" -gt $((limit_mib * 1048576)) ]; then
  echo "the bundle is larger than $limit_mib MiB: the device machine takes at most 64 MiB per run" >&2
  exit 1
fi
