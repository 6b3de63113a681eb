#!/usr/bin/env bash
# Installs the Debian packages cbst needs that are missing (as root, or through sudo, via
# apt-get); a no-op when everything is present. On a host without dpkg or apt-get nothing is
# installed: CMake then finds the dependencies through their CMake config and pkg-config
# files (or in CBST_DEPS_DIR, tools/gpu_host_deps.sh) and names any that is missing. Sourced
# by tools/test.sh, tools/demo.sh and tools/gpu_host_deps.sh.
set -euo pipefail

cbst_install_deps() {
  # libopenmpi-dev and openmpi-bin: data-parallel training (mpirun -np N cbst train ...) and its tests.
  local pkgs=(cmake ninja-build g++ pkg-config libpng-dev zlib1g-dev libgtest-dev libcli11-dev
              nlohmann-json3-dev libstb-dev libopenblas-dev libopenmpi-dev openmpi-bin)
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "cbst: no dpkg/apt-get on this host; not installing packages (CMake checks the dependencies)"
    return 0
  fi
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "cbst: installing missing packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "cbst: error: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
      return 1
    fi
  fi
  local install=($sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}")
  # The package lists may be missing or stale (a fresh container): update them once, then retry.
  if ! "${install[@]}"; then
    $sudo apt-get update -q
    "${install[@]}"
  fi
}
