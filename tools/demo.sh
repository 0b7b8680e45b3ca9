#!/usr/bin/env bash
# The README's first command: installs what is missing, builds examples/levels and runs ResNet-50 through
# O0 -> O3 on every backend this machine has (reference and oneDNN on a CPU; CUDA too where the CUDA
# toolkit and a GPU are there), with seeded weights and the bundled image (nothing is downloaded).
# Prints one table and writes levels.json and levels.png in the current directory. Extra arguments go
# to the program (e.g. --model resnet18 --iterations 10; --help lists them).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/install_deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target levels
"$root/build/examples/levels" "$@"
