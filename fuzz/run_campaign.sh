#!/usr/bin/env bash
# A longer fuzzing campaign: every target (or the ones named) for SECONDS each, one after
# the other, on the corpus of earlier campaigns plus fresh seeds. Prints executions, new
# corpus entries and crashes per target; crashes are left in BUILD/fuzz/campaign/.
#
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCBST_FUZZ=ON \
#         -DCBST_BUILD_TESTS=OFF -DCBST_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
#   cmake --build build-fuzz
#   fuzz/run_campaign.sh build-fuzz 600             # 10 CPU-minutes per target
#   fuzz/run_campaign.sh build-fuzz 60 pickle image
set -euo pipefail
build=${1:?usage: run_campaign.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: run_campaign.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors pth_zip pth_legacy pickle mxnet caffemodel json zip_inflate image config)

out=$build/fuzz/campaign
mkdir -p "$out"
"$build/fuzz/fuzz_make_seeds" "$out/generated" >/dev/null
printf '%-12s %10s %8s %8s %s\n' target executions seconds corpus crashes
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t"
  log=$out/$t.log
  start=$(date +%s)
  # -fork=0, one job: the numbers are CPU time of one core. A crash stops the target's run.
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$out/crash-$t-" "$out/corpus/$t" "$out/generated/seeds/$t" \
    >"$log" 2>&1 || true
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$out" -maxdepth 1 -name "crash-$t-*" | wc -l)
  corpus=$(find "$out/corpus/$t" -type f | wc -l)
  printf '%-12s %10s %8s %8s %s\n' "$t" "${execs:-?}" "$elapsed" "$corpus" "$crashes"
done
