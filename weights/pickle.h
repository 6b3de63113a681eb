// A restricted pickle machine for PyTorch checkpoints (protocol 2, plus the protocol-4
// framing opcodes).
// Ours: no C or C++ library reads pickles, and Python's unpickler runs any global it meets.
//
// It knows only the opcodes that PyTorch's `weights_only=True` unpickler allows and only the
// globals needed for tensors, storages and containers (collections.OrderedDict, torch._utils
// rebuild functions, torch.<T>Storage, torch.UntypedStorage, torch.Size, legacy
// torch.<T>Tensor classes). Nothing is ever executed: a global is a tag, REDUCE builds a
// value. Any other global (os.system, builtins.eval, ...) or opcode is refused by name, so a
// malicious checkpoint fails to load instead of running code. Every length, memo index and
// stack access is checked.
//
// Resources are bounded by the input and by fixed caps (pickle.cpp): containers nest at most
// kMaxDepth levels, checked as they are built; objects, container slots, memo entries and
// MARKs are counted against a budget proportional to the bytes the pickle can read, and
// against absolute caps, so a hostile stream fails with a message instead of taking
// gigabytes. A container cannot be modified once it sits inside another one, so the object
// graph has no cycles and nesting depths stay exact; objects are destroyed iteratively.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "weights/byte_source.h"
#include "weights/raw_dtype.h"

namespace cbst::weights {

enum class PyGlobal {
  ordered_dict,
  rebuild_tensor_v2,
  rebuild_tensor,
  rebuild_parameter,
  rebuild_parameter_with_state,
  storage_class,  // torch.<T>Storage / torch.UntypedStorage; the dtype is in PyObject::dtype
  torch_size,
  tensor_class,  // legacy torch.<T>Tensor; rebuilt by BUILD with (storage, offset, size, stride)
  // Values a trainer's checkpoint holds beside its state_dict (pytorch-fcn's best_mean_iu is a
  // numpy.float64; protocol 2 spells bytes as _codecs.encode(str, 'latin1')). They are pure
  // value constructors: each call gives an inert None-like object (its `text` says what it
  // stood for), so nothing is executed and nothing of them reaches a tensor.
  numpy_dtype,
  numpy_scalar,
  codecs_encode,
};

// A storage named by a persistent id: `numel` elements of `dtype` starting `offset`
// elements into the record `key` (offset is non-zero only for legacy views).
struct StorageRef {
  RawDType dtype = RawDType::u8;
  std::string key;
  uint64_t numel = 0;
  uint64_t offset = 0;
};

struct PyObject;
using PyRef = std::shared_ptr<PyObject>;

struct PyObject {
  enum class Kind { none, boolean, integer, big_integer, floating, string, tuple, list, dict, global,
                    storage, tensor };
  Kind kind = Kind::none;
  int64_t integer = 0;  // integer, boolean
  double floating = 0;
  std::string text;  // string; big_integer: two's-complement little-endian bytes; global: "module.name"
  std::vector<PyRef> items;                       // tuple, list
  std::vector<std::pair<PyRef, PyRef>> entries;   // dict (OrderedDict and dict alike)
  PyGlobal global = PyGlobal::ordered_dict;       // global
  RawDType dtype = RawDType::f32;                 // global storage_class/tensor_class; tensor
  StorageRef storage;                             // storage; tensor (the storage it views)
  int64_t storage_offset = 0;                     // tensor
  Shape sizes, strides;                           // tensor
  bool tensor_complete = false;                   // tensor: false for a legacy class instance before BUILD
  uint32_t depth = 1;                             // nesting levels, this one included
  bool contained = false;                         // sits inside a container: frozen

  PyObject() = default;
  PyObject(const PyObject&) = default;
  PyObject& operator=(const PyObject&) = default;
  // Releases children level by level: a million nested tuples must not recurse a million
  // destructors deep.
  ~PyObject();
};

const char* py_kind_name(PyObject::Kind k);

// Turns a persistent id (the tuple after BINPERSID) into a storage object.
using PersistentLoad = std::function<PyRef(const PyRef& pid)>;

// Runs one pickle from the cursor's position up to and including STOP and returns the
// object it built. The cursor is left just after STOP (the legacy format has five pickles
// back to back).
PyRef unpickle(Cursor& cursor, const PersistentLoad& persistent_load);

}  // namespace cbst::weights
