// Shared by the zip and legacy .pth readers: persistent ids -> storages, and the walk from
// the unpickled object to named tensors.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "weights/pickle.h"
#include "weights/tensor_map.h"

namespace cbst::weights {

// The element type named by a storage class global (torch.FloatStorage, torch.UntypedStorage).
RawDType storage_class_dtype(const PyRef& cls);
PyRef make_storage(const StorageRef& ref);
// A string field of a persistent id.
const std::string& pid_string(const PyRef& o, const char* what);
int64_t pid_int(const PyRef& o, const char* what);
// The fields both formats' storage persistent ids start with:
// ('storage', storage_type, key, location, numel, ...). `items` must hold at least five.
StorageRef parse_storage_pid(const std::vector<PyRef>& items);

// The raw bytes of the storage record `key`; the span stays valid until the next call.
using StorageBytes = std::function<std::span<const uint8_t>(const std::string& key)>;

// Named tensors of an unpickled checkpoint (see pth.h for naming and unwrapping).
TensorMap tensors_from_pickle(const PyRef& root, const StorageBytes& storage_bytes, bool big_endian);

}  // namespace cbst::weights
