#!/usr/bin/env bash
# The GPU acceptance run: on a GPU host, one command that builds cbst, runs the whole test
# suite (the CUDA parity tests included), the GPU benchmarks and their PyTorch twins, and
# writes one JSON summary. Meant to fit in 8 minutes on an H200 (16 cores).
#
#   tools/gpu_check.sh [--out DIR] [--build DIR] [--skip-build] [--skip-tests] [--skip-bench]
#                      [--jobs N] [--arch 90] [--tests REGEX] [--test-timeout S] [--profile]
#
#   --out DIR     where the logs, the benchmark JSON files and summary.json go (gpu_check)
#   --build DIR   the build folder (build-gpu); --skip-build reuses it as it is
#   --arch A      CMAKE_CUDA_ARCHITECTURES (90: H100/H200; one architecture halves nvcc's time)
#   --tests R     only the tests matching R (ctest -R), e.g. to rerun what failed
#   --test-timeout S   ctest's limit per test in seconds (180)
#   --profile     after the benchmarks, tools/bench/gpu_profile.sh on small-deeplabv3plus at
#                 256x16, inference and training (cbst's kernels by device time beside
#                 PyTorch's), into OUT/profile (about a minute)
#
# Dependencies: what the host has, plus .deps/ when tools/gpu_host_deps.sh made it on a
# machine with apt (README "Building on a GPU host without a package registry"); cuDNN from
# CUDNN_ROOT, else from PyTorch's nvidia.cudnn package. Each part is timed; a part whose
# program is missing (no python3 torch, no cbst) is recorded as skipped, never as passed.
# Exit status: 0 when every part that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

out=gpu_check
build=build-gpu
skip_build=0 skip_tests=0 skip_bench=0 profile=0
jobs=$(nproc)
test_timeout=180
arch=90
tests_regex=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --skip-tests) skip_tests=1; shift ;;
    --skip-bench) skip_bench=1; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --tests) tests_regex="$2"; shift 2 ;;
    --test-timeout) test_timeout="$2"; shift 2 ;;
    --profile) profile=1; shift ;;
    *) echo "gpu_check.sh: error: unknown argument '$1'; see the header of $0" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out_abs="$(cd "$out" && pwd)"
parts="$out/parts.tsv"  # name, status, seconds, detail
: > "$parts"
start_all=$(date +%s)

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$parts"; echo "== $1: $2 (${3} s) $4"; }

# run NAME LOGFILE COMMAND...: runs the command, logs its output, records passed/failed.
run() {
  local name="$1" log="$2"
  shift 2
  local t0=$(date +%s)
  if "$@" > "$log" 2>&1; then
    record "$name" passed $(( $(date +%s) - t0 )) "$log"
  else
    record "$name" failed $(( $(date +%s) - t0 )) "$log: $(tail -n 1 "$log" | tr '\t' ' ')"
  fi
}

if [[ -z "${CUDACXX:-}" ]] && ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1 || true
echo "GPU: $(head -n 1 "$out/gpu.txt")"
{ uname -a; grep PRETTY_NAME /etc/os-release; nproc; "${CUDACXX:-nvcc}" --version | tail -n 2; c++ --version | head -n 1
  cmake --version | head -n 1; python3 -c 'import torch; print("torch", torch.__version__, torch.backends.cudnn.version())'
} > "$out/host.txt" 2>&1

source tools/gpu_env.sh
cbst_find_cudnn

# ---- build
if [[ $skip_build == 0 ]]; then
  # Warnings stay warnings here: another compiler version may warn where ours does not, and
  # this run is about whether the CUDA paths work.
  cfg=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCBST_CUDA=ON -DCBST_WERROR=OFF
       "-DCMAKE_CUDA_ARCHITECTURES=$arch")
  [[ -d .deps ]] && cfg+=("-DCBST_DEPS_DIR=$PWD/.deps")
  [[ -d .deps/shared ]] && cfg+=("-DCBST_SHARED_DIR=$PWD/.deps/shared")
  [[ -n "$cudnn_root" ]] && cfg+=("-DCUDNN_ROOT=$cudnn_root")
  run configure "$out/configure.log" cmake "${cfg[@]}"
  run build "$out/build.log" cmake --build "$build" -j "$jobs"
else
  record build skipped 0 "--skip-build: using $build as it is"
fi
cbst="$build/tools/cbst"

# ---- tests: every label; CUDA tests must run here, so a skipped CUDA test is a finding.
if [[ $skip_tests == 0 && -d "$build" ]]; then
  regex=(); [[ -n "$tests_regex" ]] && regex=(-R "$tests_regex")
  ctest --test-dir "$build" -N -L cuda "${regex[@]}" | sed -n 's/^ *Test *#[0-9]*: //p' > "$out/cuda_tests.txt"
  run tests "$out/ctest.log" ctest --test-dir "$build" -j "$jobs" --output-on-failure --timeout "$test_timeout" \
      --output-junit "$out_abs/ctest.xml" "${regex[@]}"
else
  record tests skipped 0 "not asked or no build"
fi

# ---- benchmarks and their PyTorch twins
have_torch=0
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && have_torch=1
if [[ $skip_bench == 0 && -x "$cbst" ]]; then
  run bench-conv "$out/bench_conv.log" "$cbst" bench conv --device cuda --json "$out/bench_conv.json"
  run bench-labeling "$out/bench_labeling.log" "$cbst" bench labeling --device cuda --images 8 --prior \
      --json "$out/bench_labeling.json"
  run bench-ops "$out/bench_ops.log" "$cbst" bench ops --device cuda --json "$out/bench_ops.json"
  for row in "fcn8s-vgg16 500 1" "resnet38 500 2" "small-deeplabv3plus 256 16"; do
    read -r model size batch <<< "$row"
    lr=$(cbst_bench_lr "$model")
    for mode in train infer; do
      tag="${model}_${mode}"
      run "train-step-$tag" "$out/cbst_$tag.log" "$cbst" bench train-step --device cuda --model "$model" \
          --mode "$mode" --size "$size" --batch "$batch" --lr "$lr" --steps 20 --warmup 5 --json "$out/cbst_$tag.json"
      if [[ $have_torch == 1 ]]; then
        run "torch-$tag" "$out/torch_$tag.log" python3 tools/bench/train_step_torch.py --device cuda --model "$model" \
            --mode "$mode" --size "$size" --batch "$batch" --lr "$lr" --steps 20 --warmup 5 --json "$out/torch_$tag.json"
      else
        record "torch-$tag" skipped 0 "python3 cannot import torch with CUDA"
      fi
    done
  done
  if [[ $have_torch == 1 ]]; then
    run torch-labeling "$out/torch_labeling.log" python3 tools/bench/labeling_torch.py --images 8 --prior \
        --json "$out/torch_labeling.json"
  fi
else
  record bench skipped 0 "not asked or no cbst at $cbst"
fi

# ---- where the step's time goes (tools/bench/gpu_profile.sh)
if [[ $profile == 1 && -x "$cbst" ]]; then
  for mode in infer train; do
    run "profile-$mode" "$out/profile_$mode.log" tools/bench/gpu_profile.sh --build "$build" --mode "$mode" \
        --size 256 --batch 16 --steps 2 --out "$out/profile"
  done
fi

total=$(( $(date +%s) - start_all ))
python3 - "$out" "$parts" "$total" <<'EOF'
import glob, json, os, re, sys
import xml.etree.ElementTree as ET
out, parts, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
summary = {"gpu": open(os.path.join(out, "gpu.txt")).read().strip(), "seconds": total, "parts": [], "tests": {},
           "benchmarks": {}}
for line in open(parts):
    name, status, secs, detail = line.rstrip("\n").split("\t", 3)
    summary["parts"].append({"name": name, "status": status, "seconds": int(secs), "detail": detail})
cuda_names = set()
if os.path.exists(os.path.join(out, "cuda_tests.txt")):
    cuda_names = {l.strip() for l in open(os.path.join(out, "cuda_tests.txt")) if l.strip()}
p = os.path.join(out, "ctest.xml")
if os.path.exists(p):
    cases = ET.parse(p).getroot().findall(".//testcase")
    for label, keep in (("all", lambda c: True), ("cuda", lambda c: c.get("name") in cuda_names)):
        sel = [c for c in cases if keep(c)]
        failed = [c.get("name") for c in sel if c.find("failure") is not None or c.get("status") == "fail"]
        skipped = [c.get("name") for c in sel if c.find("skipped") is not None or c.get("status") == "notrun"]
        summary["tests"][label] = {"total": len(sel), "passed": len(sel) - len(failed) - len(skipped),
                                   "failed": len(failed), "skipped": len(skipped), "failures": failed[:50],
                                   "skipped_names": skipped[:50]}
for p in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(p)[:-5]
    if name == "summary":
        continue
    try:
        summary["benchmarks"][name] = json.load(open(p))
    except ValueError:
        summary["benchmarks"][name] = "unreadable"
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print("\n%-36s %-8s %6s" % ("part", "status", "s"))
for p in summary["parts"]:
    print("%-36s %-8s %6d" % (p["name"], p["status"], p["seconds"]))
for label, t in summary["tests"].items():
    print("tests %-5s total %d, passed %d, failed %d, skipped %d %s" % (label, t["total"], t["passed"], t["failed"],
          t["skipped"], ("; failed: " + ", ".join(t["failures"][:10])) if t["failures"] else ""))
for tag in sorted(k[5:] for k in summary["benchmarks"] if k.startswith("cbst_")):
    c, t = summary["benchmarks"].get("cbst_" + tag), summary["benchmarks"].get("torch_" + tag)
    if isinstance(c, dict) and "ms_per_step" in c:
        tm = t.get("ms_per_step") if isinstance(t, dict) else None
        print("%-30s cbst %9.2f ms  torch %9s ms  ratio %s" % (tag, c["ms_per_step"], "%.2f" % tm if tm else "n/a",
              "%.2f" % (c["ms_per_step"] / tm) if tm else "n/a"))
print("total %d s; wrote %s" % (total, os.path.join(out, "summary.json")))
# On a GPU host a CUDA test that reports skipped did not run: that is a finding, not a pass.
if summary["tests"].get("cuda", {}).get("skipped") and "NVIDIA" in summary["gpu"].upper():
    print("CUDA tests skipped on a GPU host: " + ", ".join(summary["tests"]["cuda"]["skipped_names"][:10]))
    sys.exit(3)
EOF
py=$?
# 3: CUDA tests skipped on a GPU host (printed above); anything else but 0: no summary.
[[ $py != 0 && $py != 3 ]] && echo "gpu_check.sh: no summary (python3 exited $py): the parts are in $parts"
[[ $py != 3 ]] && ! grep -q $'\tfailed\t' "$parts"
