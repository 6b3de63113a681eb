#include "fuzz/fuzz_common.h"
#include "weights/safetensors.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const cbst::weights::MemorySource src(data, size, "fuzz.safetensors");
  cbst::weights::read_safetensors(src);
}
