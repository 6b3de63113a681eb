// Hand-made JPEG files for the reader's tests and the fuzz reproducers (fuzz/make_seeds.cpp):
// small enough to follow byte by byte, so that each names exactly the Huffman tables it means.
#pragma once

#include <cstdint>
#include <vector>

namespace cbst::data::test_util {

// One scan of `tiny_jpeg`: its table selectors (DC table << 4 | AC table), spectral range
// and successive approximation (Ah << 4 | Al).
struct JpegScan {
  uint8_t tables = 0x00;
  uint8_t spectral_start = 0;
  uint8_t spectral_end = 63;
  uint8_t approximation = 0x00;
};

// An 8x8 grey JPEG: one component, a quantisation table of ones, DC table 0 (and AC table 0
// when `with_ac_table`) holding one 1-bit code for symbol 0, then the scans, each followed by
// one entropy-coded byte 0x3F: 0 bits (DC difference 0, AC end of block, no refinement) and
// padding. Every pixel decodes to 128. `frame` is the SOF marker: 0xC0 baseline, 0xC2
// progressive. The first SOS starts at byte 106, or 124 with the AC table.
inline std::vector<uint8_t> tiny_jpeg(uint8_t frame, bool with_ac_table, const std::vector<JpegScan>& scans) {
  std::vector<uint8_t> b = {0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00};
  b.insert(b.end(), 64, 1);
  b.insert(b.end(), {0xFF, frame, 0x00, 0x0B, 8, 0x00, 8, 0x00, 8, 1, 1, 0x11, 0});
  const uint8_t tables = with_ac_table ? 2 : 1;
  const int length = 2 + 18 * tables;
  b.insert(b.end(), {0xFF, 0xC4, 0x00, uint8_t(length)});
  for (uint8_t t = 0; t < tables; ++t) {
    b.insert(b.end(), {uint8_t(t << 4), 1});  // class (0 DC, 1 AC), id 0; one code of length 1
    b.insert(b.end(), 15, 0);
    b.push_back(0);  // its symbol
  }
  for (const JpegScan& s : scans) {
    b.insert(b.end(), {0xFF, 0xDA, 0x00, 0x08, 1, 1, s.tables, s.spectral_start, s.spectral_end, s.approximation});
    b.push_back(0x3F);
  }
  b.insert(b.end(), {0xFF, 0xD9});
  return b;
}

}  // namespace cbst::data::test_util
