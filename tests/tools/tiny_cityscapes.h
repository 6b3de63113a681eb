// A tiny Cityscapes val split for tests that run `cbst` on labelled images.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/label_map.h"

namespace cbst::testing {

// `images` frames of width×height in root/{leftImg8bit,gtFine}/val/ulm: a colour pattern that
// differs per frame, and ground truth in diagonal stripes of road, car and sky (labelIds 7,
// 26, 23). Returns the frames' stems.
inline std::vector<std::string> write_tiny_cityscapes_val(const std::filesystem::path& root, int width, int height,
                                                          int images) {
  std::filesystem::create_directories(root / "leftImg8bit/val/ulm");
  std::filesystem::create_directories(root / "gtFine/val/ulm");
  std::vector<std::string> stems;
  for (int i = 0; i < images; ++i) {
    const std::string stem = "ulm_000000_00000" + std::to_string(i);
    data::Image im = data::Image::blank(width, height, 3, 0);
    data::Labels gt = data::Labels::blank(width, height);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        uint8_t* px = im.row(y) + x * 3;
        px[0] = uint8_t(11 * x + 3 * y * (i + 1));
        px[1] = uint8_t((x * y * 7) ^ (40 * i));
        px[2] = uint8_t(255 - 6 * y);
        const uint8_t ids[3] = {7, 26, 23};  // road, car, sky
        gt.ids[size_t(y) * size_t(width) + size_t(x)] = ids[(x / 5 + y / 4 + i) % 3];
      }
    data::write_png((root / ("leftImg8bit/val/ulm/" + stem + "_leftImg8bit.png")).string(), im);
    data::write_png_grey((root / ("gtFine/val/ulm/" + stem + "_gtFine_labelIds.png")).string(), gt);
    stems.push_back(stem);
  }
  return stems;
}

}  // namespace cbst::testing
