// Deflated zip members through zlib and the bounds we put around it, on streams made by zlib
// (raw deflate, level 9) at development time: `zlib.compressobj(9, zlib.DEFLATED, -15)` over
// the text below (a dynamic-Huffman block).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/check.h"
#include "tests/support/expect_close.h"
#include "tests/weights/weights_fixtures.h"
#include "weights/byte_source.h"
#include "weights/zip_reader.h"

namespace cbst::weights {
namespace {

using ::cbst::testing::error_of;
using testing::Bytes;

// The same words and linear congruential generator as the generating script.
std::string lcg_text() {
  const char* words[] = {"features", "classifier", "weight", "bias", "running_mean",
                         "running_var", "conv", "bn", "layer", "downsample"};
  uint64_t x = 1;
  std::string out;
  for (int i = 0; i < 150; ++i) {
    x = (x * 1103515245 + 12345) % (uint64_t(1) << 31);
    if (i) out += ' ';
    out += words[(x >> 16) % 10];
    out += '.';
    out += std::to_string((x >> 8) % 10);
  }
  return out;
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

const std::string kDynamicHex =
    "7554598e83300cbd4a4e8048c8424e330a1dda41a274045d34b71f489c60bbf48780b1df7bde3286bf7eaeb418e1ec86"
    "b05456cc8f691aa6cbd733cc9511a7312ccb701e560f2fbaa96ac5b90ff7c7dc2f9512dfb7d7b484ebefd8aff6573f5c"
    "7eee552d4eb7e9b93aa39f7a8bdc91af7d204035e1f4494883014cb2f9841309643a2cc8e71848b7dba21c67470e8ae5"
    "0c99b489a1a6919488256573acc5f8f6207d9b32aab11f101a48c9c3d91046e893d9304d0aa0fa5d72d0598aa2c4505e"
    "b997dff204697c96813a1ce7607d28568bf78e299a1f2132bb0483431510bac483feb8dcf378e83dde4188cc1564cd2e"
    "a580d1a10525b3c224c2520080cb731871dc87042c45441f262f0799be82428549ba5f44983e5a19cd1b4956b054086f"
    "34e445acf5dbc06c9d064f4e0cf586993c5a184557210f1344105799ac0e5f0dc9df60137aa555dfd89b5d29343bca8f"
    "c0e8ce69698f108e3f5a2afe55060add86e515ad0e5dcce2e171cf1177c34bf75943cd86f8d8138605e52a7393ba52ef"
    "783d9b7f";

TEST(Inflate, DecodesADynamicHuffmanStreamFromZlib) {
  const std::string text = lcg_text();
  ASSERT_EQ(text.size(), 1551u);
  const std::vector<uint8_t> z = from_hex(kDynamicHex);
  const std::vector<uint8_t> out = inflate_raw(z.data(), z.size(), text.size());
  EXPECT_EQ(std::string(out.begin(), out.end()), text);
}

TEST(Inflate, DecodesFixedHuffmanWithBackReferences) {
  // zlib output for b"abcabcabcabcabcabc" (fixed Huffman, one match of distance 3).
  const std::vector<uint8_t> z = from_hex("4b4c4a4e444500");
  const std::vector<uint8_t> out = inflate_raw(z.data(), z.size(), 18);
  EXPECT_EQ(std::string(out.begin(), out.end()), "abcabcabcabcabcabc");
}

TEST(Inflate, AnEmptyMemberInflatesToNothing) {
  // One final stored block of length 0: what a zip tool writes for an empty file.
  const std::vector<uint8_t> z = {0x01, 0x00, 0x00, 0xff, 0xff};
  EXPECT_TRUE(inflate_raw(z.data(), z.size(), 0).empty());
  EXPECT_NE(error_of([&] { inflate_raw(z.data(), z.size(), 1); }).find("produced 0 bytes"), std::string::npos);
}

TEST(Inflate, WrongDeclaredSizesAndTruncationAreErrors) {
  const std::vector<uint8_t> z = from_hex(kDynamicHex);
  EXPECT_NE(error_of([&] { inflate_raw(z.data(), z.size(), 1550); }).find("exceeds the declared 1550 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([&] { inflate_raw(z.data(), z.size(), 1552); }).find("produced 1551 bytes"), std::string::npos);
  // Refused before allocating: 2^50 bytes cannot come out of 477.
  EXPECT_NE(error_of([&] { inflate_raw(z.data(), z.size(), uint64_t(1) << 50); }).find("impossible"), std::string::npos);
  for (size_t n = 0; n < z.size(); ++n) {
    const std::string e = error_of([&] { inflate_raw(z.data(), n, 1551); });
    EXPECT_NE(e.find("deflate: "), std::string::npos) << n;
    EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
  }
  EXPECT_NE(error_of([&] { inflate_raw(z.data(), z.size() / 2, 1551); }).find("truncated"), std::string::npos);
}

TEST(Inflate, FlippedBitsNeverCrash) {
  const std::vector<uint8_t> z = from_hex(kDynamicHex);
  for (size_t i = 0; i < z.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = z;
      bad[i] ^= uint8_t(1 << bit);
      try {
        inflate_raw(bad.data(), bad.size(), 1551);
      } catch (const Error&) {
      }
    }
  }
}

TEST(Inflate, ACorruptDeflatedMemberNamesTheEntry) {
  const std::string text = lcg_text();
  const Bytes data(text.begin(), text.end());
  Bytes z = from_hex(kDynamicHex);
  z[0] ^= 0x02;  // block type 2 (dynamic) becomes 3, which DEFLATE does not have
  const Bytes file = testing::make_zip({{"m/data/0", data, z}});
  MemorySource src(file);
  const ZipArchive zip(src);
  const std::string e = error_of([&] { zip.read(zip.entries().at(0)); });
  EXPECT_NE(e.find("zip: entry 'm/data/0': deflate: invalid block type"), std::string::npos) << e;
}

TEST(Inflate, ADeflatedMemberIsCrcChecked) {
  const std::string text = lcg_text();
  Bytes data(text.begin(), text.end());
  const Bytes file = testing::make_zip({{"m/data/0", data, from_hex(kDynamicHex)}});
  MemorySource src(file);
  const ZipArchive zip(src);
  const std::vector<uint8_t> out = zip.read(zip.entries().at(0));
  EXPECT_EQ(std::string(out.begin(), out.end()), text);
  data[7] ^= 1;  // the directory's CRC is now that of other bytes
  const Bytes lying = testing::make_zip({{"m/data/0", data, from_hex(kDynamicHex)}});
  MemorySource lying_src(lying);
  const ZipArchive lying_zip(lying_src);
  EXPECT_NE(error_of([&] { lying_zip.read(lying_zip.entries().at(0)); }).find("fails its CRC-32 check"),
            std::string::npos);
}

}  // namespace
}  // namespace cbst::weights
