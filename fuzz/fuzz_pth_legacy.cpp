#include "fuzz/fuzz_common.h"
#include "weights/pth.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const cbst::weights::MemorySource src(data, size, "fuzz.pth");
  cbst::weights::read_pth_legacy(src);
}
