#!/usr/bin/env bash
# A longer fuzzing campaign: every target (or the ones named) for CPU_SECONDS of CPU time
# each, one after the other, on the corpus of earlier campaigns plus fresh seeds. Prints
# executions, CPU and wall seconds, corpus size and crashes per target; crash inputs are left
# in BUILD/fuzz/campaign/.
#
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCBST_FUZZ=ON \
#         -DCBST_BUILD_TESTS=OFF -DCBST_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
#   cmake --build build-fuzz
#   nice -n 5 fuzz/run_campaign.sh build-fuzz 600             # 10 CPU-minutes per target
#   fuzz/run_campaign.sh build-fuzz 60 pickle image
#
# CPU time, not wall time: libFuzzer's -max_total_time counts wall seconds, which on a shared
# or niced machine buys less fuzzing than it says. So each target runs in rounds of at most
# its remaining CPU seconds (wall >= CPU for one thread), each round timed by /usr/bin/time,
# until the rounds add up to CPU_SECONDS. A finding stops the target's rounds.
set -euo pipefail
build=${1:?usage: run_campaign.sh BUILD_DIR CPU_SECONDS [TARGET...]}
cpu_budget=${2:?usage: run_campaign.sh BUILD_DIR CPU_SECONDS [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors pth_zip pth_legacy pickle mxnet caffemodel json zip_inflate image config)

out=$build/fuzz/campaign
# What libFuzzer writes for a finding: crash- (sanitizer report, abort, uncaught exception),
# leak-, timeout-, oom-. Not slow-unit-: a unit slower than -report_slow_units is a timeout
# anyway (-timeout=10), and a slow-unit without one means the clock jumped (a paused
# machine: one pickle unit "took 1074 s" and replayed in milliseconds).
findings() { find "$out" -maxdepth 1 \( -name "crash-$1-crash-*" -o -name "crash-$1-leak-*" \
                -o -name "crash-$1-timeout-*" -o -name "crash-$1-oom-*" \); }
mkdir -p "$out"
"$build/fuzz/fuzz_make_seeds" "$out/generated" >/dev/null
printf '%-12s %12s %8s %8s %8s %s\n' target executions cpu_s wall_s corpus crashes
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t"
  log=$out/$t.log
  : >"$log"
  cpu=0 execs=0 round=0
  start=$(date +%s)
  while [ "$cpu" -lt "$cpu_budget" ]; do
    round=$((round + 1))
    left=$((cpu_budget - cpu))
    [ "$left" -ge 30 ] || left=30  # short rounds would spend their time reloading the corpus
    # -fork=0, one job: one thread, so the CPU seconds are those of one core.
    /usr/bin/time -f 'cpu_seconds: %U %S' -o "$out/$t.time" \
      "$build/fuzz/fuzz_$t" -max_total_time="$left" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$out/crash-$t-" "$out/corpus/$t" "$out/generated/seeds/$t" \
      >"$out/$t.round.log" 2>&1 || true
    { echo "=== round $round"; cat "$out/$t.round.log" "$out/$t.time"; } >>"$log"
    used=$(awk '/^cpu_seconds:/ { printf "%d", $2 + $3 + 0.5 }' "$out/$t.time")
    cpu=$((cpu + ${used:-0}))
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.round.log" | tail -1)
    execs=$((execs + ${n:-0}))
    if [ -n "$(findings "$t" | head -1)" ]; then break; fi
    if [ "${used:-0}" -eq 0 ]; then echo "$t: round $round used no CPU time; see $log" >&2; break; fi
  done
  rm -f "$out/$t.round.log" "$out/$t.time"
  wall=$(( $(date +%s) - start ))
  crashes=$(findings "$t" | wc -l)
  corpus=$(find "$out/corpus/$t" -type f | wc -l)
  printf '%-12s %12s %8s %8s %8s %s\n' "$t" "$execs" "$cpu" "$wall" "$corpus" "$crashes"
done
