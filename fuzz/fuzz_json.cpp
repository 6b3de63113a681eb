#include <string_view>

#include "fuzz/fuzz_common.h"
#include "weights/json.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (cbst::weights::is_valid_utf8(text)) cbst::weights::parse_json(text);
}
