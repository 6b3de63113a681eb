// Helpers shared by the data tests: a temporary folder and small fixture writers.
#pragma once

#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/label_map.h"

// stb_image_write for JPEG fixtures, compiled static into each test that includes this.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace cbst::data::test_util {

// A fresh folder under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("cbst_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Creates the parent folders of `rel` and returns the full path.
  std::string file(const std::string& rel) const {
    const std::filesystem::path p = std::filesystem::path(path_) / rel;
    std::filesystem::create_directories(p.parent_path());
    return p.string();
  }

 private:
  std::string path_;
};

// The Cityscapes palette indexed by labelId (0..33), as GTA5 label files carry it.
inline std::vector<std::array<uint8_t, 3>> labelid_palette() {
  std::vector<std::array<uint8_t, 3>> pal(256, {0, 0, 0});
  for (const ClassInfo& c : class_table(ClassSpace::cityscapes19)) pal[c.label_id] = c.color;
  return pal;
}

// A deterministic RGB test pattern (gradients plus a checker) of the given size.
inline Image pattern_image(int w, int h, int seed = 0) {
  Image im = Image::blank(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = im.row(y) + x * 3;
      p[0] = uint8_t((x * 7 + seed * 31) & 255);
      p[1] = uint8_t((y * 5 + seed * 17) & 255);
      p[2] = uint8_t((((x / 4) + (y / 4)) % 2) * 200 + seed);
    }
  return im;
}

inline void write_palette_png(const std::string& path, int w, int h, const std::vector<uint8_t>& indices) {
  PngWriteSpec spec{.width = w, .height = h, .channels = 1, .bit_depth = 8};
  spec.samples8 = indices;
  spec.palette = labelid_palette();
  write_png(path, spec);
}

inline void write_grey_png(const std::string& path, int w, int h, const std::vector<uint8_t>& values) {
  write_png_grey(path, Labels{w, h, values});
}

inline void write_jpeg(const std::string& path, const Image& im) {
  if (!stbi_write_jpg(path.c_str(), im.width, im.height, im.channels, im.pixels.data(), 95))
    throw std::runtime_error("cannot write " + path);
}

inline bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A GTA5-layout tree of `n` images of varying sizes under d/gta; returns its root. Image i
// is pattern_image(40 + 3i, 24 + i, i) with palette labels (k + i) mod 34.
inline std::string write_gta_tree(const TempDir& d, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string stem = std::string(5 - std::to_string(i + 1).size(), '0') + std::to_string(i + 1);
    const int w = 40 + 3 * i, h = 24 + i;
    write_png(d.file("gta/images/" + stem + ".png"), pattern_image(w, h, i));
    std::vector<uint8_t> ids(size_t(w) * size_t(h));
    for (int k = 0; k < w * h; ++k) ids[size_t(k)] = uint8_t((k + i) % 34);
    write_palette_png(d.file("gta/labels/" + stem + ".png"), w, h, ids);
  }
  return d.path() + "/gta";
}

}  // namespace cbst::data::test_util
