// Shared by the libFuzzer targets (one .cpp each, defining fuzz_one): every reader must end
// in a value or a cbst::Error. Any other exception (std::bad_alloc above all: the readers
// bound their memory) escapes and libFuzzer reports it as a crash, as it does sanitizer
// reports, timeouts and allocations above -malloc_limit_mb.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/check.h"

void fuzz_one(const uint8_t* data, size_t size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    fuzz_one(data, size);
  } catch (const cbst::Error&) {
  }
  return 0;
}
