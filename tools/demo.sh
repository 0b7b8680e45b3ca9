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
program=levels
# grep reads every line (no -q): a grep that stops early breaks make's pipe, and pipefail then says 'no'.
if nvidia-smi -L >/dev/null 2>&1 && cmake --build "$root/build" --target help | grep 'levels_cuda' >/dev/null; then
  program=levels_cuda  # the same source through nvcc: adds the CUDA backend
fi
cmake --build "$root/build" -j"$(nproc)" --target "$program"
"$root/build/examples/$program" "$@"
