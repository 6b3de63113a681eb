#!/usr/bin/env bash
# CPU speed of cbst against PyTorch on this machine: train step and inference of each model
# below, and the single layers of `cbst bench layers`, both programs back to back in one run
# with the same thread count. Prints the table with the ratio cbst/PyTorch (below 1: cbst is
# faster) and writes every result plus the summary as JSON into --out.
#
#   tools/bench/compare_cpu.sh [--cbst build-perf/tools/cbst] [--threads 2] [--steps 3]
#                              [--repeat 1] [--out compare_cpu] [--skip-layers] [--skip-models]
#
# --repeat R runs each model's pair R times, alternating cbst and PyTorch, and reports the
# median time of each side, their ratio, and the range of the R pairs' own ratios: on a
# machine whose speed drifts from minute to minute one pair can be off by a third.
#
# PyTorch is a developer tool here (pip install torch); the build and the tests never need it.
# Timings on a shared machine are noisy: the load average is recorded before and after.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cbst="build-perf/tools/cbst"
threads=2
steps=3
repeat=1
out="compare_cpu"
skip_layers=0
skip_models=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cbst) cbst="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --skip-layers) skip_layers=1; shift ;;
    --skip-models) skip_models=1; shift ;;
    *) echo "compare_cpu.sh: error: unknown argument '$1'; see the header of $0" >&2; exit 2 ;;
  esac
done
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || { echo "compare_cpu.sh: error: --repeat '$repeat' is not a positive whole number (e.g. 3)" >&2; exit 2; }
[[ -x "$cbst" ]] || { echo "compare_cpu.sh: error: no cbst program at '$cbst'; build it or pass --cbst PATH" >&2; exit 2; }
python3 -c 'import torch' 2>/dev/null || { echo "compare_cpu.sh: error: python3 cannot import torch; pip install torch" >&2; exit 2; }

# The models: registered name, input size, batch, learning rate (ResNet-38's random weights
# diverge at 1e-3 in PyTorch's initialisation). Adding a model is one line here (and its
# PyTorch twin in MODELS of train_step_torch.py; until then its torch column reads n/a).
models=(
  "fcn8s-vgg16          128 1 1e-3"
  "resnet38             128 1 1e-4"
  "small-fcn             96 4 1e-3"
  "small-deeplabv3plus   96 4 1e-3"
)

mkdir -p "$out"
# Same threads on both sides: OpenMP and OpenBLAS for cbst, set_num_threads for PyTorch.
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
cut -d' ' -f1-3 /proc/loadavg > "$out/load_before.txt"
echo "load average before: $(cat "$out/load_before.txt")"

if [[ $skip_models == 0 ]]; then
  for row in "${models[@]}"; do
    read -r model size batch lr <<< "$row"
    for mode in train infer; do
      echo "== $model $mode ${size}x${size} batch $batch"
      for ((r = 1; r <= repeat; ++r)); do
        tag="${model}_${mode}_r$r"
        rm -f "$out/cbst_$tag.json" "$out/torch_$tag.json"
        if ! "$cbst" bench train-step --device cpu --model "$model" --mode "$mode" --size "$size" --batch "$batch" \
            --lr "$lr" --steps "$steps" --warmup 2 --json "$out/cbst_$tag.json" > "$out/cbst_$tag.log" 2>&1; then
          tail -n 1 "$out/cbst_$tag.log"
          break
        fi
        grep -E "^$model " "$out/cbst_$tag.log" || true
        params=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["parameters"])' "$out/cbst_$tag.json")
        python3 "$here/train_step_torch.py" --device cpu --threads "$threads" --model "$model" --mode "$mode" \
          --size "$size" --batch "$batch" --lr "$lr" --steps "$steps" --warmup 2 --expect-parameters "$params" \
          --json "$out/torch_$tag.json" > "$out/torch_$tag.log" 2>&1 || true
        grep -E "^$model |error" "$out/torch_$tag.log" || true
      done
    done
  done
fi

if [[ $skip_layers == 0 ]]; then
  echo "== layers"
  "$cbst" bench layers --json "$out/cbst_layers.json"
  python3 "$here/layers_torch.py" --cases "$out/cbst_layers.json" --threads "$threads" \
    --json "$out/torch_layers.json" 2>&1 | grep -v -i numpy
fi
cut -d' ' -f1-3 /proc/loadavg > "$out/load_after.txt"

python3 - "$out" "$threads" "$repeat" "${models[@]}" <<'EOF'
import json, os, statistics, sys
out, threads, repeat, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
summary = {"threads": threads, "repeat": repeat, "load_before": open(os.path.join(out, "load_before.txt")).read().split(),
           "load_after": open(os.path.join(out, "load_after.txt")).read().split(), "models": [], "layers": []}
print("\nload average before %s, after %s; %d threads each side" %
      (" ".join(summary["load_before"]), " ".join(summary["load_after"]), threads))
print("%-20s %-6s %8s %12s %12s %8s  %s" % ("model", "mode", "input", "cbst ms", "torch ms", "ratio",
      "pairs' ratios" if repeat > 1 else ""))
for row in rows:
    model, size, batch, _ = row.split()
    for mode in ("train", "infer"):
        cs, ts, pairs = [], [], []
        for r in range(1, repeat + 1):
            c, t = load("cbst_%s_%s_r%d.json" % (model, mode, r)), load("torch_%s_%s_r%d.json" % (model, mode, r))
            if c is None:
                continue
            cs.append(c["ms_per_step"])
            if t:
                ts.append(t["ms_per_step"])
                pairs.append(c["ms_per_step"] / t["ms_per_step"])
        if not cs:
            continue
        cm = statistics.median(cs)
        tm = statistics.median(ts) if ts else None
        ratio = cm / tm if tm else None
        summary["models"].append({"model": model, "mode": mode, "size": int(size), "batch": int(batch),
                                  "cbst_ms": cm, "torch_ms": tm, "ratio": ratio, "cbst_ms_runs": cs,
                                  "torch_ms_runs": ts, "pair_ratios": pairs})
        spread = "%.2f-%.2f" % (min(pairs), max(pairs)) if len(pairs) > 1 else ""
        print("%-20s %-6s %8s %12.1f %12s %8s  %s" % (model, mode, "%sx%s" % (batch, size), cm,
              "%.1f" % tm if tm else "n/a", "%.2f" % ratio if ratio else "n/a", spread))
c, t = load("cbst_layers.json"), load("torch_layers.json")
if c and t:
    tr = {r["case"]: r for r in t["rows"]}
    print("\n%-16s %-10s %9s %9s %6s %9s %9s %6s %6s %6s" % ("layer", "op", "cbst fwd", "torch fwd", "ratio",
          "cbst bwd", "torch bwd", "ratio", "sgemm", "frac"))
    for r in c["rows"]:
        q = tr.get(r["case"])
        if not q:
            continue
        fr = r["fwd_ms"] / q["fwd_ms"]
        br = r["bwd_ms"] / q["bwd_ms"]
        # the median of the pairs' ratios (cbst bench layers times each GEMM run beside a layer run)
        ff = r.get("sgemm_fwd_frac") or None
        bf = r.get("sgemm_bwd_frac") or None
        summary["layers"].append({"case": r["case"], "op": r["op"], "cbst_fwd_ms": r["fwd_ms"],
                                  "torch_fwd_ms": q["fwd_ms"], "fwd_ratio": fr, "cbst_bwd_ms": r["bwd_ms"],
                                  "torch_bwd_ms": q["bwd_ms"], "bwd_ratio": br, "sgemm_fraction_fwd": ff,
                                  "sgemm_fraction_bwd": bf})
        print("%-16s %-10s %9.2f %9.2f %6.2f %9.2f %9.2f %6.2f %6s %6s" % (r["case"], r["op"], r["fwd_ms"],
              q["fwd_ms"], fr, r["bwd_ms"], q["bwd_ms"], br, "%.2f" % ff if ff else "-", "%.2f" % bf if bf else "-"))
    print("(sgemm frac: OpenBLAS time of the layer's im2col GEMMs alone / cbst's layer time, fwd then bwd; "
          "median over alternating pairs)")
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print("\nwrote %s" % os.path.join(out, "summary.json"))
EOF
