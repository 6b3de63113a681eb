// The bounded JSON parse of safetensors headers (weights/json.h): any bytes, UTF-8 or not.
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "weights/json.h"

void fuzz_one(const uint8_t* data, size_t size) {
  cbst::weights::parse_json(std::string_view(reinterpret_cast<const char*>(data), size));
}
