// One spelling of sizes on every command line: N (square) or HxW (tools/cli/sizes.h).
#include "tools/cli/sizes.h"

#include <gtest/gtest.h>

#include <string>

namespace cbst::cli {
namespace {

std::string error_of(const std::string& text, int64_t lo = 1, int64_t hi = 1 << 16) {
  try {
    parse_size(text, "--size", lo, hi, "96x192");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Sizes, SquareAndRectangularFormsParse) {
  const Size2 a = parse_size("96", "--crop");
  EXPECT_EQ(a.height, 96);
  EXPECT_EQ(a.width, 96);
  const Size2 b = parse_size("128x256", "--size");
  EXPECT_EQ(b.height, 128);
  EXPECT_EQ(b.width, 256);
}

TEST(Sizes, AnythingElseIsRefusedNamingTheFlagAndAnExample) {
  for (const char* bad : {"", "x", "96x", "x96", "96x192x3", "96 x 192", "-5", "96X192", "9.5", "0x", "96,192",
                          "99999999999999999999"})
    EXPECT_EQ(error_of(bad), "--size '" + std::string(bad) + "' is not N or HxW (e.g. 96x192)") << bad;
  EXPECT_EQ(error_of("0"), "--size '0': each side must lie in 1..65536 (e.g. 96x192)");
  EXPECT_EQ(error_of("8x9", 16, 2048), "--size '8x9': each side must lie in 16..2048 (e.g. 96x192)");
  EXPECT_EQ(error_of("16x4096", 16, 2048), "--size '16x4096': each side must lie in 16..2048 (e.g. 96x192)");
  EXPECT_EQ(error_of("16x2048", 16, 2048), "");
}

}  // namespace
}  // namespace cbst::cli
