#!/usr/bin/env bash
# Gathers, on a Debian machine with a package registry, what a GPU host without one needs to
# build cbst, into .deps/ (ignored by git; carry it to the GPU host):
#   .deps/CLI11/include/CLI/...   CLI11 headers          (libcli11-dev)
#   .deps/stb/stb_image*.h        stb headers            (libstb-dev)
#   .deps/googletest/             GoogleTest sources     (googletest)
#   .deps/sysroot/usr/...         libpng and zlib headers and libraries, unpacked from .debs
# See README "Building on a GPU host without a package registry".
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
cbst_install_deps
out=.deps
rm -rf "$out"
mkdir -p "$out/CLI11/include" "$out/stb" "$out/sysroot" "$out/debs"
cp -r /usr/include/CLI "$out/CLI11/include/"
cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h /usr/include/stb/stb_image_resize.h "$out/stb/" 2>/dev/null || \
  cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h "$out/stb/"
cp -r /usr/src/googletest "$out/googletest"
(cd "$out/debs" && apt-get download libpng-dev libpng16-16 zlib1g-dev zlib1g >/dev/null)
for d in "$out"/debs/*.deb; do dpkg -x "$d" "$out/sysroot"; done
rm -rf "$out/debs"
du -sh "$out"
echo "cbst: wrote $out; on the GPU host configure with:"
echo "  cmake -S . -B build -G Ninja -DCBST_DEPS_DIR=\$PWD/.deps -DCMAKE_PREFIX_PATH=\$PWD/.deps/sysroot/usr \\"
echo "        -DCUDNN_ROOT=\$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))')"
