#include "fuzz/fuzz_common.h"
#include "weights/mxnet.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const cbst::weights::MemorySource src(data, size, "fuzz.params");
  cbst::weights::read_mxnet_params(src);
}
