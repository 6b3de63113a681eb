#!/usr/bin/env bash
# Gathers, on a Debian machine with a package registry, what a GPU host without one needs to
# build cbst, into .deps/ (ignored by git; carry it to the GPU host):
#   .deps/sysroot/usr/...   libpng, zlib, CLI11, nlohmann-json and stb unpacked from their
#                           Debian packages: headers, libraries, and the CMake config files
#                           through which CMake finds CLI11 and nlohmann_json
#   .deps/googletest/       GoogleTest sources (googletest)
#   .deps/shared/           ../shared/fixtures and ../shared/realdata when the checkout has
#                           them, for the real-data tests
# On the GPU host, -DCBST_DEPS_DIR=$PWD/.deps makes CMake look there first.
# See README "Building on a GPU host without a package registry".
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
cbst_install_deps
out=.deps
rm -rf "$out"
mkdir -p "$out/sysroot" "$out/debs"
cp -r /usr/src/googletest "$out/googletest"
(cd "$out/debs" && apt-get download libpng-dev libpng16-16 zlib1g-dev zlib1g libcli11-dev nlohmann-json3-dev \
                                    libstb-dev >/dev/null)
for d in "$out"/debs/*.deb; do dpkg -x "$d" "$out/sysroot"; done
# An absolute link (zlib's libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) would point at
# the GPU host's own files, where that version may not exist: point it inside the sysroot.
while IFS= read -r link; do
  target=$(readlink "$link")
  if [[ -e "$out/sysroot$target" ]]; then
    ln -sfn "$(realpath --relative-to="$(dirname "$link")" "$out/sysroot$target")" "$link"
  fi
done < <(find "$out/sysroot" -type l -lname '/*')
rm -rf "$out/debs" "$out/sysroot/usr/share/doc"
# The real-data tests' files (a few MB), which stay behind otherwise: gpu_check.sh points the
# tests at this copy (-DCBST_SHARED_DIR).
for part in fixtures realdata; do
  if [[ -d ../shared/$part ]]; then
    mkdir -p "$out/shared"
    cp -r "../shared/$part" "$out/shared/$part"
  fi
done
du -sh "$out"
echo "cbst: wrote $out; on the GPU host configure with:"
echo "  cmake -S . -B build -G Ninja -DCBST_DEPS_DIR=\$PWD/.deps \\"
echo "        -DCUDNN_ROOT=\$(python3 -c 'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])')"
