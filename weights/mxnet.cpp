#include "weights/mxnet.h"

#include <optional>

#include "weights/raw_dtype.h"

namespace cbst::weights {

namespace {

constexpr uint32_t kV1Magic = 0xF993FAC8;
constexpr uint32_t kV2Magic = 0xF993FAC9;
constexpr uint32_t kV3Magic = 0xF993FACA;
constexpr uint32_t kMaxLegacyDims = 32;

RawDType mxnet_dtype(int32_t flag, uint64_t index) {
  switch (flag) {
    case 0: return RawDType::f32;
    case 1: return RawDType::f64;
    case 2: return RawDType::f16;
    case 3: return RawDType::u8;
    case 4: return RawDType::i32;
    case 5: return RawDType::i8;
    case 6: return RawDType::i64;
    case 7: return RawDType::boolean;
    case 8: return RawDType::i16;
    case 9: return RawDType::u16;
    case 10: return RawDType::u32;
    case 11: return RawDType::u64;
    case 12: return RawDType::bf16;
    default:
      CBST_THROW("mxnet: array ", index, " has unknown type flag ", flag, "; the file is corrupt");
  }
}

Shape read_shape_i64(Cursor& cur, uint64_t index, bool v3, bool& is_none) {
  const int32_t ndim = cur.i32();
  is_none = v3 ? ndim == -1 : ndim == 0;
  if (is_none) return {};
  if (ndim < 0 || ndim > kMaxDims)
    CBST_THROW("mxnet: array ", index, " has ", ndim, " dimensions; the file is corrupt or the array has more than ",
               kMaxDims);
  Shape s(static_cast<size_t>(ndim));
  for (int64_t& d : s) {
    d = cur.i64();
    if (d < 0) CBST_THROW("mxnet: array ", index, " has dimension ", d, "; the file is corrupt");
  }
  return s;
}

// One NDArray record; nullopt for a "none" array.
std::optional<Tensor> read_array(Cursor& cur, uint64_t index) {
  const uint32_t magic = cur.u32();
  Shape shape;
  bool is_none = false;
  if (magic == kV2Magic || magic == kV3Magic) {
    const int32_t stype = cur.i32();
    if (stype != 0)
      CBST_THROW("mxnet: array ", index, " has sparse storage type ", stype,
                 "; only dense arrays are supported; convert it with .tostype('default')");
    shape = read_shape_i64(cur, index, magic == kV3Magic, is_none);
  } else if (magic == kV1Magic) {
    shape = read_shape_i64(cur, index, false, is_none);
  } else {
    // Legacy record: the word just read is ndim, followed by u32 dims.
    if (magic > kMaxLegacyDims)
      CBST_THROW("mxnet: array ", index, " starts with 0x", std::hex, magic, std::dec,
                 ", neither a record magic nor a plausible dimension count; the file is corrupt");
    is_none = magic == 0;
    for (uint32_t d = 0; d < magic; ++d) shape.push_back(int64_t(cur.u32()));
    if (shape.size() > size_t(kMaxDims))
      CBST_THROW("mxnet: array ", index, " has ", shape.size(), " dimensions, more than the engine's ", kMaxDims);
  }
  if (is_none) return std::nullopt;

  const int32_t dev_type = cur.i32();
  cur.i32();  // device id: everything loads to the CPU
  if (dev_type != 1 && dev_type != 2 && dev_type != 3 && dev_type != 5)
    CBST_THROW("mxnet: array ", index, " has device type ", dev_type, "; the file is corrupt");
  const RawDType type = mxnet_dtype(cur.i32(), index);
  const std::string what = "mxnet array " + std::to_string(index);
  const uint64_t nbytes = checked_mul(checked_numel(shape, what), raw_dtype_size(type), what);
  cur.need(nbytes, what);
  std::vector<uint8_t> raw(nbytes);
  cur.bytes(raw.data(), nbytes);
  return decode_tensor(raw.data(), type, shape);
}

}  // namespace

TensorMap read_mxnet_params(const ByteSource& src) {
  const BufferedSource buffered(src);  // records and names are read a field at a time
  Cursor cur(buffered);
  if (src.size() < 24) CBST_THROW("mxnet: file of ", src.size(), " bytes is too small; the file is truncated");
  if (cur.u64() != kMxnetListMagic) CBST_THROW("mxnet: bad magic number; not an MXNet NDArray file");
  cur.u64();  // reserved
  const uint64_t count = cur.u64();
  // Each record takes at least 4 bytes, which bounds the count before anything is reserved.
  if (count > cur.remaining() / 4)
    CBST_THROW("mxnet: ", count, " arrays cannot fit in the remaining ", cur.remaining(), " bytes; the file is corrupt");
  std::vector<std::optional<Tensor>> arrays;
  arrays.reserve(count);
  for (uint64_t i = 0; i < count; ++i) arrays.push_back(read_array(cur, i));

  const uint64_t name_count = cur.u64();
  if (name_count != 0 && name_count != count)
    CBST_THROW("mxnet: ", name_count, " names for ", count, " arrays; the file is corrupt");
  TensorMap map;
  map.format = "mxnet";
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = std::to_string(i);
    if (name_count) {
      const uint64_t len = cur.u64();
      cur.need(len, "an array name");
      name = cur.string(len);
    }
    if (arrays[i]) map.insert(name, std::move(*arrays[i]));
  }
  if (!cur.at_end())
    CBST_THROW("mxnet: ", cur.remaining(), " unexpected bytes after the names; the file is corrupt");
  return map;
}

TensorMap read_mxnet_params(const std::string& path) {
  FileSource src(path);
  return reading_file(path, "reading it as mxnet", [&] { return read_mxnet_params(src); });
}

}  // namespace cbst::weights
