#!/usr/bin/env bash
# The README's first command: installs what is missing, builds the classify example and runs it on
# the bundled image at O0 and O1 with seeded weights (nothing is downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target classify
./build/examples/classify --random-weights --model resnet50 --level all
