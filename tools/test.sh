#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything (Release) and runs the whole
# CTest suite (GPU tests skip with a reason where there is no GPU). Idempotent; reuses build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure --timeout 3000
