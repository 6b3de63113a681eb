#include "fuzz/fuzz_common.h"
#include "weights/caffe.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const cbst::weights::MemorySource src(data, size, "fuzz.caffemodel");
  cbst::weights::read_caffemodel(src);
}
