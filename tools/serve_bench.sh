#!/usr/bin/env bash
# The serving benchmark (docs/performance.md, "Serving"): builds examples/serve and bench/serve_load
# (Release), writes 224x224 JPEGs (tools/make_jpegs.py), starts serve on loopback, loads it at each
# concurrency with serve_load and appends one JSON row per concurrency to bench/results/serve-<date>.jsonl.
#
#   bash tools/serve_bench.sh [--model resnet50] [--backend cuda] [--level O3] [--max-batch 256]
#                             [--window-ms 5] [--concurrency 1,16,256] [--seconds 20] [--out FILE] [--no-build]
# Environment: VISOPT_SERVE_BUILD (build folder; default build-serve), VISOPT_CMAKE_ARGS, VISOPT_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
model=resnet50 backend='' level='' max_batch=256 window=5 concurrency=1,16,256 seconds=20 out='' build=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --level) level=$2; shift 2 ;;
    --max-batch) max_batch=$2; shift 2 ;;
    --window-ms) window=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "serve_bench.sh: unknown option '$1'" >&2; exit 1 ;;
  esac
done
builddir=${VISOPT_SERVE_BUILD:-build-serve}
if [[ $build == 1 ]]; then
  configure=()
  nvidia-smi -L > /dev/null 2>&1 && configure+=(-DCMAKE_CUDA_ARCHITECTURES=native)
  # shellcheck disable=SC2086  # VISOPT_CMAKE_ARGS is a list of arguments
  cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=Release -DVISOPT_BUILD_TESTS=OFF "${configure[@]}" ${VISOPT_CMAKE_ARGS:-} > "$builddir.configure.log" 2>&1 ||
    { cat "$builddir.configure.log" >&2; exit 1; }
  grep "visopt:" "$builddir.configure.log" >&2 || true
  cmake --build "$builddir" -j"$(nproc)" --target serve serve_load
fi
python=${VISOPT_PYTHON:-python3}
images=$builddir/serve-jpegs
[[ -d $images ]] || "$python" tools/make_jpegs.py --out "$images" --count 64 --size 224
out=${out:-bench/results/serve-$(date -u +%F).jsonl}
mkdir -p "$(dirname "$out")"

args=(--random-weights --model "$model" --max-batch "$max_batch" --batch-window-ms "$window" --port 0)
[[ -n $backend ]] && args+=(--backend "$backend")
[[ -n $level ]] && args+=(--level "$level")
log=$(mktemp)
"$builddir/examples/serve" "${args[@]}" > "$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
port=
for _ in $(seq 600); do  # compile() tunes and captures every batch size first: allow minutes
  port=$(sed -n 's|^serve: listening on http://[^:]*:\([0-9]*\)$|\1|p' "$log")
  [[ -n $port ]] && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; echo "serve_bench.sh: serve exited" >&2; exit 1; }
  sleep 1
done
[[ -n $port ]] || { cat "$log" >&2; echo "serve_bench.sh: serve did not start listening" >&2; exit 1; }
sed -n '2,4p' "$log" | cut -c1-200 >&2
"$builddir/bench/serve_load" --port "$port" --images "$images" --concurrency "$concurrency" --seconds "$seconds" \
  --json "$out" --tag "$(date -u +%Y%m%dT%H%M%SZ)-serve" --note "${args[*]}"
echo "serve_bench.sh: rows appended to $out" >&2
