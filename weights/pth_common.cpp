#include "weights/pth_common.h"

#include "weights/raw_dtype.h"

namespace cbst::weights {

namespace {

constexpr int kMaxNesting = 32;

struct Found {
  std::string name;
  PyRef tensor;
};

std::string key_string(const PyRef& k) {
  switch (k->kind) {
    case PyObject::Kind::string: return k->text;
    case PyObject::Kind::integer: return std::to_string(k->integer);
    default:
      CBST_THROW("pickle: a dict key is a ", py_kind_name(k->kind), "; expected str or int keys in a state_dict");
  }
}

// Memo references let a small pickle describe a DAG whose tree is exponentially large;
// the walk gives every path its own name (tied weights appear under each), so it is capped.
constexpr uint64_t kMaxVisits = uint64_t(1) << 22;

void collect(const PyRef& o, const std::string& prefix, int depth, std::vector<Found>& out, uint64_t& visits) {
  if (depth > kMaxNesting)
    CBST_THROW("pickle: containers nested deeper than ", kMaxNesting, " levels (or a self-reference); the file is corrupt");
  if (++visits > kMaxVisits)
    CBST_THROW("pickle: the object graph reaches more than ", kMaxVisits, " values through shared references; "
               "the file is corrupt or hostile");
  auto child = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
  switch (o->kind) {
    case PyObject::Kind::tensor: out.push_back({prefix, o}); break;
    case PyObject::Kind::dict:
      for (const auto& [k, v] : o->entries) collect(v, child(key_string(k)), depth + 1, out, visits);
      break;
    case PyObject::Kind::list:
    case PyObject::Kind::tuple:
      for (size_t i = 0; i < o->items.size(); ++i) collect(o->items[i], child(std::to_string(i)), depth + 1, out, visits);
      break;
    default: break;  // epoch counters, strings, None: not weights
  }
}

bool holds_tensor_directly(const PyRef& dict) {
  for (const auto& [k, v] : dict->entries)
    if (v->kind == PyObject::Kind::tensor) return true;
  return false;
}

// {"state_dict": {...}, "epoch": 3} -> the inner dict, when the outer one has no tensors.
PyRef unwrap(const PyRef& root) {
  static const char* const kWrappers[] = {"state_dict", "model_state_dict", "model", "net", "network"};
  if (root->kind != PyObject::Kind::dict || holds_tensor_directly(root)) return root;
  for (const char* w : kWrappers)
    for (const auto& [k, v] : root->entries)
      if (k->kind == PyObject::Kind::string && k->text == w && v->kind == PyObject::Kind::dict) return v;
  return root;
}

}  // namespace

RawDType storage_class_dtype(const PyRef& cls) {
  if (cls->kind != PyObject::Kind::global || cls->global != PyGlobal::storage_class)
    CBST_THROW("pickle: persistent id names a ", py_kind_name(cls->kind), " ", printable(cls->text),
               " instead of a storage class; the file is corrupt");
  return cls->dtype;
}

PyRef make_storage(const StorageRef& ref) {
  auto o = std::make_shared<PyObject>();
  o->kind = PyObject::Kind::storage;
  o->storage = ref;
  o->dtype = ref.dtype;
  return o;
}

const std::string& pid_string(const PyRef& o, const char* what) {
  if (o->kind != PyObject::Kind::string)
    CBST_THROW("pickle: persistent id ", what, " is a ", py_kind_name(o->kind), ", expected str; the file is corrupt");
  return o->text;
}

int64_t pid_int(const PyRef& o, const char* what) {
  if (o->kind != PyObject::Kind::integer || o->integer < 0)
    CBST_THROW("pickle: persistent id ", what, " is not a non-negative int; the file is corrupt");
  return o->integer;
}

StorageRef parse_storage_pid(const std::vector<PyRef>& it) {
  if (pid_string(it[0], "tag") != "storage")
    CBST_THROW("pickle: persistent id tag is '", printable(it[0]->text), "', expected 'storage'; the file is corrupt");
  StorageRef ref;
  ref.dtype = storage_class_dtype(it[1]);
  ref.key = pid_string(it[2], "key");
  pid_string(it[3], "location");
  ref.numel = uint64_t(pid_int(it[4], "numel"));
  return ref;
}

TensorMap tensors_from_pickle(const PyRef& root, const StorageBytes& storage_bytes, bool big_endian) {
  std::vector<Found> found;
  uint64_t visits = 0;
  collect(unwrap(root), "", 0, found, visits);
  TensorMap map;
  for (const Found& f : found) {
    const PyObject& t = *f.tensor;
    const std::string what = "tensor '" + printable(f.name) + "'";
    const StorageRef& s = t.storage;
    const size_t esize = raw_dtype_size(s.dtype);
    const std::span<const uint8_t> bytes = storage_bytes(s.key);
    // The storage's elements must lie inside its record.
    const uint64_t need = checked_mul(checked_add(s.offset, s.numel, what), esize, what);
    if (need > bytes.size())
      CBST_THROW(what, ": storage '", printable(s.key), "' declares ", s.numel, " elements of ", raw_dtype_name(s.dtype),
                 " (", need, " bytes with its offset) but its record holds ", bytes.size(),
                 " bytes; the file is truncated or corrupt");
    map.insert(f.name, decode_strided(bytes.data() + s.offset * esize, s.numel, s.dtype, t.storage_offset,
                                      t.sizes, t.strides, big_endian, what));
  }
  return map;
}

}  // namespace cbst::weights
