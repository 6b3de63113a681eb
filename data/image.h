// Images and label maps on the host, and their file I/O.
//
// PNG goes through libpng so that a palette PNG yields its indices (GTA5 labels are palette
// images whose indices are Cityscapes labelIds) and a 16-bit PNG its 16-bit samples
// (SYNTHIA labels: class id in the first channel). Other formats (JPEG, BMP, ...) go
// through stb_image. Every writer is atomic: a temp file in the same folder, then rename,
// so a reader (or a killed run) never sees a half-written file.
//
// All readers throw cbst::Error naming the file for a missing, unreadable, truncated or
// corrupt input; none of them crash.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/atomic_file.h"

namespace cbst::data {

// An 8-bit image, rows top to bottom, channels interleaved (HWC). RGB order when channels == 3.
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels

  static Image blank(int width, int height, int channels, uint8_t value = 0);
  uint8_t* row(int y) { return pixels.data() + size_t(y) * width * channels; }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * width * channels; }
  bool empty() const { return pixels.empty(); }
};

// One value per pixel as stored in a label file: a palette index, a grey value, or the first
// channel of a colour image (8 or 16 bits). Mapping to class ids is label_map.h's job.
struct RawLabels {
  int width = 0;
  int height = 0;
  std::vector<uint16_t> values;  // height * width
};

// Class ids per pixel (0..C-1) with 255 = ignore.
struct Labels {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> ids;  // height * width

  static Labels blank(int width, int height, uint8_t value = 255);
};

constexpr uint8_t kIgnoreLabel = 255;

// What a PNG header says (used to pick a decoding path and in error messages).
struct PngHeader {
  int width = 0;
  int height = 0;
  int bit_depth = 0;   // per sample: 1, 2, 4, 8, 16
  int color_type = 0;  // 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
};
PngHeader read_png_header(const std::string& path);
bool is_png_file(const std::string& path);  // by signature, not extension

// Any image as 8-bit RGB (palette expanded, grey replicated, alpha dropped, 16-bit
// reduced to its high byte).
Image read_image_rgb(const std::string& path);
// Label values: palette indices, grey values or channel 0, at their stored bit depth.
RawLabels read_label_values(const std::string& path);

// ---- writers (atomic)
void write_png_grey(const std::string& path, const Labels& labels);
void write_png(const std::string& path, const Image& image);  // 1 (grey) or 3 (RGB) channels

// General writer, mostly for tests and the synthetic benchmark: writes exactly the given
// samples. `palette` non-empty writes a palette PNG whose indices are `samples8`.
struct PngWriteSpec {
  int width = 0;
  int height = 0;
  int channels = 1;                    // 1, 2, 3, 4 (ignored for palette images)
  int bit_depth = 8;                   // 8 or 16
  std::vector<uint8_t> samples8 = {};    // bit_depth 8: height * width * channels
  std::vector<uint16_t> samples16 = {};  // bit_depth 16: height * width * channels
  std::vector<std::array<uint8_t, 3>> palette = {};  // up to 256 entries
};
void write_png(const std::string& path, const PngWriteSpec& spec);

// Side-by-side panel (image | ground truth | prediction | ...): all inputs are scaled by
// nearest neighbour to the first one's height, separated by `gap` white columns.
Image side_by_side(const std::vector<const Image*>& images, int gap = 4);

// Bytes of a whole file (a regular file only: a FIFO or device is refused, not read).
std::vector<uint8_t> read_file_bytes(const std::string& path);
// The atomic writers are the engine's (engine/atomic_file.h), named here for data's callers.
using ::cbst::write_file_atomic;
using ::cbst::write_text_atomic;

}  // namespace cbst::data
