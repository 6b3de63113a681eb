#!/usr/bin/env bash
# Quick start, first command: installs missing Debian packages, configures and builds the
# `cbst` program into build/ (CUDA when nvcc is found), and runs `cbst demo`: the synthetic
# two-domain benchmark, source-only, ST, CBST, CBST-SP and a target-supervised oracle, the
# per-class IoU table, and runs/demo/report.html; on success its last line is the whole
# command's time, build included. Arguments go to `cbst demo`
# (e.g. tools/demo.sh --quick, tools/demo.sh --device cuda --out runs/demo-gpu).
#   CBST_BUILD_DIR   build folder (default: build)
#   CBST_JOBS        parallel jobs (default: nproc)
#   CBST_CMAKE_ARGS  extra cmake arguments (e.g. -DCBST_CUDA=OFF)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
source tools/deps.sh
cbst_install_deps

build="${CBST_BUILD_DIR:-build}"
jobs="${CBST_JOBS:-$(nproc)}"
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
# shellcheck disable=SC2086  # CBST_CMAKE_ARGS is a list of words
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CBST_CMAKE_ARGS:-}
# Only the program: the demo needs no test binaries.
cmake --build "$build" -j "$jobs" --target cbst
built=$SECONDS
status=0
"$build/tools/cbst" demo "$@" || status=$?
if [ "$status" -eq 0 ]; then
  # The demo's ten-minute budget counts the build too: say what the whole command took.
  echo "tools/demo.sh: done in $((SECONDS - start)) s ($((built - start)) s packages and build, $((SECONDS - built)) s demo)"
fi
exit "$status"
