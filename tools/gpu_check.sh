#!/usr/bin/env bash
# On a GPU machine: builds the CUDA test binaries, makes the oracle fixtures with that machine's torch,
# and runs every gpu-labelled test: the model and runtime tests, and the two consumer projects
# (tests/consumer_cuda through find_package, tests/consumer_subdirectory built for sm_75), which ctest
# builds first. Extra CMake arguments come from VISOPT_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VISOPT_GPU_BUILD:-build-gpu}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVISOPT_WITH_ONEDNN=OFF -DVISOPT_BUILD_EXAMPLES=OFF ${VISOPT_CMAKE_ARGS:-} > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
grep "visopt:" "$build.configure.log"
cmake --build "$build" -j"$(nproc)" --target visopt_gpu_tests visopt_gpu_fp8_tests &
build_pid=$!
python3 tools/make_fixtures.py --out "$build/fixtures"  # while nvcc builds; ctest's fixture step then finds them made
wait "$build_pid"
ctest --test-dir "$build" -L gpu --output-on-failure --timeout 1200 "$@"
