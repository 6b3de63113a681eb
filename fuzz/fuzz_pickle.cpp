// The pickle machine alone, with a persistent_load that accepts any id as a storage, so
// the fuzzer reaches the opcodes after BINPERSID without building a whole checkpoint.
#include <memory>

#include "fuzz/fuzz_common.h"
#include "weights/pickle.h"

void fuzz_one(const uint8_t* data, size_t size) {
  const cbst::weights::MemorySource src(data, size, "fuzz.pkl");
  cbst::weights::Cursor cursor(src);
  auto load = [](const cbst::weights::PyRef&) {
    auto storage = std::make_shared<cbst::weights::PyObject>();
    storage->kind = cbst::weights::PyObject::Kind::storage;
    return storage;
  };
  while (!cursor.at_end()) cbst::weights::unpickle(cursor, load);  // pickles back to back, as in legacy files
}
