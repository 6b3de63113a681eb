#!/usr/bin/env bash
# Quick start, second command: installs missing Debian packages, configures and builds into
# build/ (CUDA when nvcc is found), and runs the whole ctest suite. Exits non-zero on any
# failure. Extra arguments go to cmake (e.g. tools/test.sh -DCBST_CUDA=OFF).
#   CBST_BUILD_DIR   build folder (default: build)
#   CBST_JOBS        parallel jobs (default: nproc)
#   CBST_TEST_LABELS ctest label regex to run (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
cbst_install_deps

build="${CBST_BUILD_DIR:-build}"
jobs="${CBST_JOBS:-$(nproc)}"
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j "$jobs"
label_args=()
if [ -n "${CBST_TEST_LABELS:-}" ]; then label_args=(-L "$CBST_TEST_LABELS"); fi
ctest --test-dir "$build" -j "$jobs" --output-on-failure --timeout 900 "${label_args[@]}"
