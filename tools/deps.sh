#!/usr/bin/env bash
# Installs the Debian packages cbst needs that are missing (as root, via apt-get); a no-op
# when everything is present. Sourced by tools/test.sh and tools/demo.sh.
set -euo pipefail

cbst_install_deps() {
  local pkgs=(cmake ninja-build g++ pkg-config libpng-dev zlib1g-dev libgtest-dev libcli11-dev
              libstb-dev libopenblas-dev)
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
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}
