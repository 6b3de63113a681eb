// The zip checkpoint: <folder>/data.pkl, <folder>/data/<key>, optional <folder>/byteorder.
#include <cstring>

#include "weights/pth.h"
#include "weights/pth_common.h"
#include "weights/zip_reader.h"

namespace cbst::weights {

namespace {

// pid = ('storage', storage_type, key, location, numel)
PyRef zip_persistent_load(const PyRef& pid) {
  if (pid->kind != PyObject::Kind::tuple || pid->items.size() != 5)
    CBST_THROW("pickle: persistent id is not a 5-tuple ('storage', type, key, location, numel); the file is corrupt");
  return make_storage(parse_storage_pid(pid->items));
}

}  // namespace

TensorMap read_pth_zip(const ByteSource& src) {
  ZipArchive zip(src);
  if (zip.entries().empty()) CBST_THROW("pth: the zip archive is empty; it is not a PyTorch checkpoint");
  // The top folder is whatever precedes the first '/' of the first entry (torch uses the
  // file's base name, or "archive").
  const std::string& first = zip.entries().front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos)
    CBST_THROW("pth: zip entry '", printable(first), "' is not inside a folder; this zip is not a PyTorch checkpoint");
  const std::string folder = first.substr(0, slash + 1);
  const ZipEntry* pkl = zip.find(folder + "data.pkl");
  if (!pkl) CBST_THROW("pth: no '", printable(folder), "data.pkl' in the zip archive; this zip is not a PyTorch checkpoint");

  bool big_endian = false;
  if (const ZipEntry* order = zip.find(folder + "byteorder")) {
    const std::vector<uint8_t> text = zip.read(*order);
    const std::string s(text.begin(), text.end());
    if (s == "big") big_endian = true;
    else if (s != "little") CBST_THROW("pth: byteorder record says '", printable(s), "', expected 'little' or 'big'");
  }

  const std::vector<uint8_t> pickle_bytes = zip.read(*pkl);
  MemorySource pickle_src(pickle_bytes, folder + "data.pkl");
  Cursor cur(pickle_src);
  const PyRef root = unpickle(cur, zip_persistent_load);

  // Tensors sharing a storage are usually adjacent, so caching the last record avoids
  // re-reading it without holding every storage in memory at once.
  std::string cached_key;
  std::vector<uint8_t> cached;
  bool have_cache = false;
  auto storage_bytes = [&](const std::string& key) -> std::span<const uint8_t> {
    if (!have_cache || key != cached_key) {
      const ZipEntry* rec = zip.find(folder + "data/" + key);
      if (!rec) CBST_THROW("pth: storage record '", printable(folder + "data/" + key), "' is missing; the file is corrupt");
      cached = zip.read(*rec);
      cached_key = key;
      have_cache = true;
    }
    return cached;
  };
  TensorMap map = tensors_from_pickle(root, storage_bytes, big_endian);
  map.format = "pytorch-zip";
  return map;
}

}  // namespace cbst::weights
