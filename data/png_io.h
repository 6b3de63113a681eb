// Internal: libpng decoding into a caller-owned state (data/png_io.cpp explains why).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace cbst::data {

enum class PngMode {
  rgb8,  // expand palette/grey to RGB, strip alpha and 16-bit
  raw,   // samples as stored: palette indices, grey values, 16-bit in host order
};

struct PngDecodeState {
  PngHeader header;
  int channels = 0;   // after the mode's transformations
  int bit_depth = 0;  // 8 or 16 after the transformations
  size_t rowbytes = 0;
  std::vector<uint8_t> pixels;  // height * rowbytes
  std::vector<uint8_t*> rows;
};

// Throws cbst::Error naming `path` for a bad signature, truncation or corruption.
void decode_png(PngDecodeState& state, const std::vector<uint8_t>& bytes, PngMode mode,
                const std::string& path);

}  // namespace cbst::data
