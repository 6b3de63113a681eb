#!/usr/bin/env bash
# Where a GPU train or inference step spends its time, cbst beside PyTorch, on a GPU host
# (tools/gpu_check.sh measures the steps; this says why they differ). cbst's kernels are read
# with Nsight Compute (ncu, one metric: each kernel's duration; --clock-control none leaves
# the clocks as they are, --cache-control none keeps the caches warm as in a real step; ncu
# still runs the kernels one at a time, so launch gaps are not in its numbers), PyTorch's
# twin with torch.profiler. Prints the kernels of each by summed device time and writes the
# raw CSV and logs into --out.
#
#   tools/bench/gpu_profile.sh [--model small-deeplabv3plus] [--mode train|infer] [--size 256]
#                              [--batch 16] [--steps 3] [--build build-gpu] [--out gpu_profile]
set -uo pipefail
cd "$(dirname "$0")/../.."
model=small-deeplabv3plus mode=infer size=256 batch=16 steps=3 build=build-gpu out=gpu_profile
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "gpu_profile.sh: error: unknown argument '$1'; see the header of $0" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
tag="${model}_${mode}_${size}x${batch}"
cbst="$build/tools/cbst"
[[ -x "$cbst" ]] || { echo "gpu_profile.sh: error: no $cbst; build it first (tools/gpu_check.sh)" >&2; exit 1; }
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -n 1)
source tools/gpu_env.sh
cbst_find_cudnn
lr=$(cbst_bench_lr "$model")
args=(bench train-step --device cuda --model "$model" --mode "$mode" --size "$size" --batch "$batch" --lr "$lr")

if [[ -n "$ncu" ]]; then
  # Warm-up steps are profiled too (ncu cannot skip by time), so the table is per profiled
  # step: all kernels of (1 + warmup + steps) steps, divided by that count.
  "$ncu" --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --print-units base \
      "$cbst" "${args[@]}" --steps "$steps" --warmup 1 > "$out/cbst_$tag.csv" 2> "$out/cbst_$tag.ncu.log"
  python3 - "$out/cbst_$tag.csv" $(( steps + 1 )) <<'PY'
import collections, csv, io, sys
path, steps = sys.argv[1], int(sys.argv[2])
text = open(path, errors="replace").read()
start = text.find('"ID"')
if start < 0:
    sys.exit("gpu_profile.sh: ncu wrote no kernel table; see %s and its .ncu.log" % path)
total, count = collections.Counter(), collections.Counter()
for row in csv.DictReader(io.StringIO(text[start:])):
    if row.get("Metric Name") != "gpu__time_duration.sum":
        continue
    ns = float(row["Metric Value"].replace(",", ""))
    unit = row.get("Metric Unit", "nsecond")
    ns *= {"nsecond": 1, "usecond": 1e3, "msecond": 1e6, "second": 1e9}.get(unit, 1)
    name = row["Kernel Name"].replace("(anonymous namespace)", "{anon}").split("(")[0]
    name = name if len(name) <= 70 else "..." + name[-67:]
    total[name] += ns
    count[name] += 1
all_ns = sum(total.values())
print("cbst: %d kernel launches, %.2f ms of kernel time per step (%d steps profiled)"
      % (sum(count.values()) // steps, all_ns / steps / 1e6, steps))
print("%-70s %8s %10s %6s" % ("kernel", "calls", "ms/step", "%"))
for name, ns in total.most_common(30):
    print("%-70s %8d %10.3f %6.1f" % (name, count[name] // steps, ns / steps / 1e6, 100 * ns / all_ns))
PY
else
  echo "gpu_profile.sh: ncu not found: cbst's kernels are not profiled"
fi
python3 tools/bench/train_step_torch.py --device cuda --model "$model" --mode "$mode" --size "$size" \
    --batch "$batch" --lr "$lr" --steps 10 --warmup 5 --profile "$steps" > "$out/torch_$tag.log" 2>&1
sed -n '/^profile of/,$p' "$out/torch_$tag.log" | head -n 40
