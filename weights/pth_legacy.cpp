// The legacy (pre-1.6, or `_use_new_zipfile_serialization=False`) checkpoint: five pickles
// back to back, then for each storage key in the order of pickle 5: i64 numel + raw bytes.
#include <cstring>
#include <unordered_map>

#include "weights/pth.h"
#include "weights/pth_common.h"

namespace cbst::weights {

namespace {

constexpr int64_t kLegacyProtocol = 1001;

struct LegacyStorage {
  RawDType dtype;
  uint64_t numel;
  uint64_t file_offset = 0;  // of the raw bytes, set when the raw section is read
  bool located = false;
};

PyRef no_persistent_ids(const PyRef&) {
  CBST_THROW("pickle: unexpected persistent id in a legacy header pickle; the file is corrupt");
}

// Reads little_endian from the sys_info dict; absent means little.
bool sys_info_big_endian(const PyRef& info) {
  if (info->kind != PyObject::Kind::dict) CBST_THROW("pth: legacy sys_info is a ", py_kind_name(info->kind), ", not a dict");
  for (const auto& [k, v] : info->entries)
    if (k->kind == PyObject::Kind::string && k->text == "little_endian")
      return v->kind == PyObject::Kind::boolean && v->integer == 0;
  return false;
}

uint64_t maybe_swap64(uint64_t v, bool big_endian) { return big_endian ? __builtin_bswap64(v) : v; }

}  // namespace

TensorMap read_pth_legacy(const ByteSource& src) {
  // The pickles are parsed an opcode at a time; the raw storages are read from `src` directly.
  const BufferedSource buffered(src);
  Cursor cur(buffered);
  if (src.size() < sizeof kLegacyPthMagic) CBST_THROW("pth: file is too small to be a checkpoint; the file is truncated");
  uint8_t head[sizeof kLegacyPthMagic];
  src.read(0, head, sizeof head);
  if (std::memcmp(head, kLegacyPthMagic, sizeof head) != 0)
    CBST_THROW("pth: invalid magic number; the file is corrupt or not a legacy PyTorch checkpoint");
  cur.seek(sizeof kLegacyPthMagic);

  const PyRef protocol = unpickle(cur, no_persistent_ids);
  if (protocol->kind != PyObject::Kind::integer || protocol->integer != kLegacyProtocol)
    CBST_THROW("pth: legacy protocol version is not ", kLegacyProtocol, "; the file is corrupt or from an unknown PyTorch");
  const bool big_endian = sys_info_big_endian(unpickle(cur, no_persistent_ids));

  // pid = ('storage', storage_type, root_key, location, numel, view_metadata); a view's
  // metadata (view_key, offset, size) selects elements of the root storage.
  std::unordered_map<std::string, LegacyStorage> storages;
  auto persistent_load = [&](const PyRef& pid) -> PyRef {
    if (pid->kind != PyObject::Kind::tuple || pid->items.size() != 6)
      CBST_THROW("pickle: legacy persistent id is not a 6-tuple; the file is corrupt");
    const auto& it = pid->items;
    StorageRef ref = parse_storage_pid(it);
    const uint64_t root_numel = ref.numel;
    auto [slot, inserted] = storages.try_emplace(ref.key, LegacyStorage{ref.dtype, root_numel});
    if (!inserted && (slot->second.dtype != ref.dtype || slot->second.numel != root_numel))
      CBST_THROW("pickle: storage '", printable(ref.key), "' is declared twice with different types or sizes; the file is corrupt");
    const PyRef& view = it[5];
    if (view->kind == PyObject::Kind::tuple && view->items.size() == 3) {
      ref.offset = uint64_t(pid_int(view->items[1], "view offset"));
      ref.numel = uint64_t(pid_int(view->items[2], "view size"));
      if (ref.offset > root_numel || ref.numel > root_numel - ref.offset)
        CBST_THROW("pickle: view of storage '", printable(ref.key), "' exceeds its ", root_numel, " elements; the file is corrupt");
    } else if (view->kind != PyObject::Kind::none) {
      CBST_THROW("pickle: storage view metadata is a ", py_kind_name(view->kind), "; the file is corrupt");
    }
    return make_storage(ref);
  };
  const PyRef root = unpickle(cur, persistent_load);

  const PyRef keys = unpickle(cur, no_persistent_ids);
  if (keys->kind != PyObject::Kind::list) CBST_THROW("pth: legacy storage key list is a ", py_kind_name(keys->kind));
  for (const PyRef& k : keys->items) {
    const std::string& key = pid_string(k, "storage key");
    auto it = storages.find(key);
    if (it == storages.end())
      CBST_THROW("pth: raw storage '", printable(key), "' is not referenced by any tensor, so its element size is unknown; the file is corrupt");
    LegacyStorage& s = it->second;
    const uint64_t numel = maybe_swap64(cur.u64(), big_endian);
    if (numel != s.numel)
      CBST_THROW("pth: raw storage '", printable(key), "' holds ", numel, " elements but the pickle declares ", s.numel,
                 "; the file is corrupt");
    const uint64_t nbytes = checked_mul(numel, raw_dtype_size(s.dtype), "storage size");
    cur.need(nbytes, "storage '" + printable(key) + "'");
    s.file_offset = cur.pos();
    s.located = true;
    cur.skip(nbytes);
  }

  // The raw section is read from the source on demand, one storage at a time.
  std::vector<uint8_t> buffer;
  auto storage_bytes = [&](const std::string& key) -> std::span<const uint8_t> {
    auto it = storages.find(key);
    if (it == storages.end() || !it->second.located)
      CBST_THROW("pth: storage '", printable(key), "' has no raw data in the file; the file is truncated or corrupt");
    buffer = src.read_vector(it->second.file_offset, it->second.numel * raw_dtype_size(it->second.dtype));
    return buffer;
  };
  TensorMap map = tensors_from_pickle(root, storage_bytes, big_endian);
  map.format = "pytorch-legacy";
  return map;
}

TensorMap read_pth(const ByteSource& src) {
  uint8_t head[sizeof kLegacyPthMagic] = {};
  src.read(0, head, std::min<uint64_t>(src.size(), sizeof head));
  if (src.size() >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return read_pth_zip(src);
  if (src.size() >= 5 && std::memcmp(head, "PYTORCH1", std::min<uint64_t>(src.size(), 8)) == 0)
    CBST_THROW("pth: the 'PYTORCH1' preview format is not supported; re-save the file with torch.save");
  if (src.size() >= 2 && head[0] == 0x80 && head[1] == 0x02) return read_pth_legacy(src);
  CBST_THROW("pth: neither a zip nor a legacy PyTorch checkpoint (first bytes do not match)");
}

TensorMap read_pth(const std::string& path) {
  FileSource src(path);
  return reading_file(path, "reading it as PyTorch", [&] { return read_pth(src); });
}

}  // namespace cbst::weights
