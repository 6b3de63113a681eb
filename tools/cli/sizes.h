// Sizes on the command line, one spelling everywhere: "N" (square) or "HxW".
#pragma once

#include <cstdint>
#include <string>

#include "engine/check.h"

namespace cbst::cli {

struct Size2 {
  int64_t height = 0, width = 0;
};

// Parses `text` given to `flag`; both sides must lie in [lo, hi]. The message says what was
// wrong and gives `example`.
inline Size2 parse_size(const std::string& text, const std::string& flag, int64_t lo = 1, int64_t hi = 1 << 16,
                        const std::string& example = "128x256") {
  Size2 s;
  bool ok = !text.empty();
  size_t i = 0;
  auto number = [&](int64_t& out) {
    if (i >= text.size() || text[i] < '0' || text[i] > '9') return false;
    int64_t v = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      v = v * 10 + (text[i] - '0');
      if (v > (int64_t(1) << 40)) return false;
    }
    out = v;
    return true;
  };
  ok = ok && number(s.height);
  if (ok && i == text.size()) {
    s.width = s.height;
  } else if (ok && text[i] == 'x') {
    ++i;
    ok = number(s.width) && i == text.size();
  } else {
    ok = false;
  }
  if (!ok) CBST_THROW(flag, " '", text, "' is not N or HxW (e.g. ", example, ")");
  if (s.height < lo || s.width < lo || s.height > hi || s.width > hi)
    CBST_THROW(flag, " '", text, "': each side must lie in ", lo, "..", hi, " (e.g. ", example, ")");
  return s;
}

}  // namespace cbst::cli
