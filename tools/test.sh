#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything (Release) and runs the whole
# CTest suite (GPU tests skip with a reason where there is no GPU); then the CPU tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer (CMakePresets.json, preset "asan"), and a bounded run
# of each libFuzzer target (tools/fuzz.sh). Idempotent; reuses build/, build-asan/ and build-fuzz/.
#   VISOPT_SANITIZERS=0 skips the sanitizer suite; VISOPT_FUZZ_SECONDS (default 60, 0 skips) bounds each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure --timeout 3000

if [[ ${VISOPT_SANITIZERS:-1} != 0 ]]; then
  # Shares build/fixtures with the release build above, so the oracle runs once.
  cmake --preset asan
  cmake --build --preset asan -j"$(nproc)"
  ctest --preset asan
fi
fuzz_seconds=${VISOPT_FUZZ_SECONDS:-60}
if [[ $fuzz_seconds != 0 ]]; then
  bash tools/fuzz.sh "$fuzz_seconds"
fi
