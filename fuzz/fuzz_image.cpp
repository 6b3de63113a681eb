// PNG (libpng) and JPEG/BMP (stb_image) through our readers, which take paths: each input
// is written to a per-process file first.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "data/image.h"
#include "fuzz/fuzz_common.h"

namespace {

const std::string& scratch_path() {
  static const std::string path = "/tmp/cbst_fuzz_image_" + std::to_string(::getpid());
  return path;
}

}  // namespace

void fuzz_one(const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(scratch_path().c_str(), "wb");
  if (!f) return;
  const bool written = std::fwrite(data, 1, size, f) == size;
  std::fclose(f);
  if (!written) return;
  try {
    cbst::data::read_label_values(scratch_path());
  } catch (const cbst::Error&) {
  }
  cbst::data::read_image_rgb(scratch_path());
}
