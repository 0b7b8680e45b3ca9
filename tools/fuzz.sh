#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang++-14 with ASan + UBSan) and runs each for a bounded
# time from its committed seed corpus. Fails on any finding (crash, sanitizer report, leak, timeout, OOM);
# the reproducer is left under build-fuzz/findings/<target>/.
#   bash tools/fuzz.sh [seconds per target, default 60] [target ...]
# New inputs libFuzzer finds go to build-fuzz/corpus/<target>/ (not committed); the seeds stay read-only.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(fuzz_safetensors fuzz_image)
build=${VISOPT_FUZZ_BUILD:-build-fuzz}

cmake -S tests/fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 > /dev/null
cmake --build "$build" -j2 --target "${targets[@]}"

for target in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/${target#fuzz_}
  work=$build/corpus/$target
  findings=$build/findings/$target
  mkdir -p "$work" "$findings"
  echo "fuzz: $target for ${seconds}s from $seeds"
  # -rss_limit_mb bounds each input; the image loader must refuse anything larger before allocating.
  # -timeout: no single input may take longer than 10 s (a hang is a finding too).
  "$build/$target" "$work" "$seeds" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" 2> "$build/$target.log" || {
    tail -n 60 "$build/$target.log"
    echo "fuzz: $target FOUND A PROBLEM; reproducer in $findings/ (run: $build/$target <file>)" >&2
    exit 1
  }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|^#[0-9]+ +DONE" "$build/$target.log" | sed "s/^/fuzz: $target: /"
done
