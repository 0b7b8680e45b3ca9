#!/usr/bin/env bash
# One command for a benchmark run (bench/README.md): builds the benchmark (Release), runs visopt_bench
# with the matmul ceiling and the peers (bench/peers.py: PyTorch, and on the CPU ONNX Runtime) in the same
# run on this machine, appends every row to bench/results/<machine>-<date>.jsonl and prints the comparison
# (bench/compare.py).
#
#   bash tools/bench.sh cpu --models resnet50,vit_b_16 --batches 1,8
#   bash tools/bench.sh gpu --models resnet50,vit_b_16 --batches 1,8,64,256 [--compile-peer]
#
# Options: --levels O1,O2 (default: every level the backend runs) · --image-size N · --iterations N ·
#   --warmup N · --compile-peer (gpu: also torch.compile max-autotune, minutes per shape) · --quick (a
#   smoke test: 3 runs unless --iterations says otherwise, results under /tmp unless --out) · --out FILE ·
#   --no-build · --no-peers · --markdown (also print the README table) · --plot FILE.png
# Environment: VISOPT_PYTHON (the peers' interpreter), VISOPT_CMAKE_ARGS (extra configure arguments),
#   VISOPT_BENCH_BUILD (build folder; default build-bench-cpu or build-bench-gpu), VISOPT_GIT_COMMIT
#   (the commit rows carry, for a copy of the tree without .git), VISOPT_ORT_PREFIX (npm prefix holding
#   onnxruntime-node; default build/ort, installed there by npm when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
[[ $# -ge 1 ]] || usage 1
mode=$1
shift
[[ $mode == cpu || $mode == gpu ]] || { [[ $mode == -h || $mode == --help ]] && usage 0; echo "bench.sh: the first argument is cpu or gpu, not '$mode'" >&2; exit 1; }

models=resnet50,vit_b_16 batches=1,8 levels='' image_size=224 iterations='' warmup='' quick=0 out='' build=1 peers=1
compile_peer=0 markdown=0 plot=''
while [[ $# -gt 0 ]]; do
  case $1 in
    --models) models=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --image-size) image_size=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --plot) plot=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --compile-peer) compile_peer=1; shift ;;
    --no-build) build=0; shift ;;
    --no-peers) peers=0; shift ;;
    --markdown) markdown=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "bench.sh: unknown option '$1' (see bash tools/bench.sh --help)" >&2; exit 1 ;;
  esac
done
if [[ $quick == 1 ]]; then
  iterations=${iterations:-3} warmup=${warmup:-1}
fi
iterations=${iterations:-30} warmup=${warmup:-5}

if [[ $mode == gpu ]] && ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2; then
  echo "bench.sh: nvidia-smi finds no GPU; 'bench.sh gpu' runs on a GPU machine (use 'bench.sh cpu' here)" >&2
  exit 1
fi

# ---- build ----
if [[ $mode == cpu ]]; then
  builddir=${VISOPT_BENCH_BUILD:-build-bench-cpu}
  target=visopt_bench backend_args=() configure=(-DVISOPT_WITH_CUDA=OFF)
else
  builddir=${VISOPT_BENCH_BUILD:-build-bench-gpu}
  # native: kernels for this GPU (a default architecture would leave Hopper to PTX JIT and older code).
  target=visopt_bench_cuda backend_args=(--backend cuda)
  configure=(-DVISOPT_WITH_ONEDNN=OFF -DVISOPT_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native)
fi
if [[ $build == 1 ]]; then
  echo "bench.sh: building $target (Release) in $builddir" >&2
  mkdir -p "$builddir"
  # shellcheck disable=SC2086  # VISOPT_CMAKE_ARGS is a list of arguments
  cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=Release -DVISOPT_BUILD_TESTS=OFF -DVISOPT_BUILD_EXAMPLES=OFF \
    -DVISOPT_BUILD_BENCH=ON "${configure[@]}" ${VISOPT_CMAKE_ARGS:-} > "$builddir/configure.log" 2>&1 ||
    { cat "$builddir/configure.log" >&2; exit 1; }
  grep "visopt:" "$builddir/configure.log" >&2 || true
  cmake --build "$builddir" --target "$target" -j"$(nproc)"
fi
bench=$builddir/bench/$target
[[ -x $bench ]] || { echo "bench.sh: $bench is not built (drop --no-build)" >&2; exit 1; }

# ---- the peers' interpreter: one that imports torch and torchvision (CONVENTIONS.md: the oracle's) ----
python=
if [[ $peers == 1 || -n $plot ]]; then
  candidates=()
  [[ -n ${VISOPT_PYTHON:-} ]] && candidates+=("$VISOPT_PYTHON")
  if [[ $mode == cpu ]]; then candidates+=(/usr/bin/python3 python3); else candidates+=(python3 /usr/bin/python3); fi
  for candidate in "${candidates[@]}"; do
    if "$candidate" -c "import torch, torchvision" > /dev/null 2>&1; then python=$candidate; break; fi
  done
  [[ -n $python || $peers == 0 ]] || { echo "bench.sh: no python with torch and torchvision (set VISOPT_PYTHON, or --no-peers)" >&2; exit 1; }
fi
python=${python:-python3}
if [[ $mode == gpu && $peers == 1 ]] && ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "bench.sh: $python's torch sees no GPU; the gpu run needs one" >&2
  exit 1
fi

# ---- ONNX Runtime, a CPU peer: npm's onnxruntime-node under $VISOPT_ORT_PREFIX, found there by peers.py ----
ort_version=1.31.1
if [[ $mode == cpu && $peers == 1 ]]; then
  export VISOPT_ORT_PREFIX=${VISOPT_ORT_PREFIX:-$PWD/build/ort}
  if ! command -v npm > /dev/null && command -v apt-get > /dev/null; then  # bench only: tests need no Node
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm >&2 || echo "bench.sh: could not install nodejs and npm" >&2
  fi
  if [[ ! -d $VISOPT_ORT_PREFIX/node_modules/onnxruntime-node ]] && command -v npm > /dev/null; then
    echo "bench.sh: installing onnxruntime-node@$ort_version into $VISOPT_ORT_PREFIX" >&2
    # skip: the CPU library ships in the package; its install step would only download CUDA's from NuGet.
    ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$VISOPT_ORT_PREFIX" --no-audit --no-fund --loglevel=error \
      "onnxruntime-node@$ort_version" >&2 || echo "bench.sh: npm could not install onnxruntime-node" >&2
  fi  # without it (or without node) peers.py says how to install it and runs the PyTorch modes only
fi

# ---- where the rows go: one file per machine and day ----
machine=$("$bench" --print-machine "${backend_args[@]}")
slug=$(printf '%s' "$machine" | tr '[:upper:]' '[:lower:]' | sed -e 's/([^)]*)//g' -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//')
day=$(date -u +%F)
if [[ -z $out ]]; then
  if [[ $quick == 1 ]]; then out=${TMPDIR:-/tmp}/visopt-bench-quick-$slug-$day.jsonl; else out=bench/results/$slug-$day.jsonl; fi
fi
mkdir -p "$(dirname "$out")"
tag=$(date -u +%Y%m%dT%H%M%SZ)-$mode
commit=$("$bench" --print-commit)
echo "bench.sh: run $tag on $machine, visopt $commit; rows to $out" >&2

common=(--image-size "$image_size" --iterations "$iterations" --warmup "$warmup" --json "$out" --tag "$tag")
[[ $quick == 1 ]] && common+=(--quick)

# ---- visopt, then the peers: same machine, same run ----
status=0
visopt_args=("${backend_args[@]}" --ceiling --model "$models" --batch "$batches" "${common[@]}")
[[ -n $levels ]] && visopt_args+=(--level "$levels")
"$bench" "${visopt_args[@]}" || { echo "bench.sh: visopt_bench reported failures (rows with an error field)" >&2; status=1; }

if [[ $peers == 1 ]]; then
  peer_args=(--device "$([[ $mode == cpu ]] && echo cpu || echo cuda)" --models "$models" --batches "$batches"
             --commit "$commit" "${common[@]}")
  [[ $compile_peer == 1 ]] && peer_args+=(--modes "default,compile_max_autotune_fp16")
  # Error rows are expected where a mode cannot run (bf16 autocast of ViT on torch 1.13): not a failed run.
  PYTHONUNBUFFERED=1 "$python" bench/peers.py "${peer_args[@]}" || echo "bench.sh: some peer modes failed (rows with an error field)" >&2
fi

# ---- the comparison ----
compare_args=("$out" --tag "$tag")
"$python" bench/compare.py "${compare_args[@]}"
[[ $markdown == 1 ]] && "$python" bench/compare.py "${compare_args[@]}" --markdown
[[ -n $plot ]] && "$python" bench/compare.py "${compare_args[@]}" --plot "$plot" > /dev/null
echo "bench.sh: rows appended to $out (run $tag)" >&2
exit $status
