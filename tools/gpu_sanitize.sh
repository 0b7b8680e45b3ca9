#!/usr/bin/env bash
# On a GPU machine, after tools/gpu_check.sh (which builds build-gpu/ and its fixtures): runs the GPU tests
# under compute-sanitizer. memcheck (out-of-bounds and misaligned accesses, leaks of device memory) over
# every non-model GPU test and one ResNet and one ViT at every level; racecheck (shared-memory hazards in
# our kernels) over the kernel tests. The 1000-cycle [resources] test and the full model
# sweep are left out: under memcheck they would take hours. Fails on the first tool that reports an error.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VISOPT_GPU_BUILD:-build-gpu}
sanitizer=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
tests=$build/tests/visopt_gpu_tests
export VISOPT_FIXTURE_DIR=$PWD/$build/fixtures VISOPT_SOURCE_DIR=$PWD
run() {
  echo "+ compute-sanitizer $*"
  "$sanitizer" --error-exitcode 86 --print-limit 20 "$@"
}
# --report-api-errors no: the out-of-memory test makes cudaMalloc fail on purpose; every CUDA call
# visopt makes is checked, so an unexpected failing call fails its test instead.
memcheck=(--tool memcheck --leak-check full --report-api-errors no)
run "${memcheck[@]}" "$tests" "[gpu]~[models]~[resources]"
run "${memcheck[@]}" "$tests" "cuda: resnet18 at 64x64*"
run "${memcheck[@]}" "$tests" "cuda: vit_ti_16 (torchvision and timm names)*"
# racecheck looks at shared memory, which only the two attention kernels use; the [kernels] test
# launches both over lengths with partial tiles. (Over whole models it runs for more than 10 minutes.)
run --tool racecheck --racecheck-report hazard "$tests" "[gpu][kernels]"
echo "compute-sanitizer: memcheck and racecheck clean"
