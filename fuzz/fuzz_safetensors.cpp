#include "fuzz/fuzz_common.h"
#include "weights/safetensors.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const cbst::weights::MemorySource src(data, size, "fuzz.safetensors");
  // The header alone first (a checkpoint's model name), then the whole file.
  try {
    cbst::weights::read_safetensors_metadata(src);
  } catch (const cbst::Error&) {
  }
  cbst::weights::read_safetensors(src);
}
