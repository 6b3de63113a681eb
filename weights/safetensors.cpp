#include "weights/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "engine/atomic_file.h"
#include "engine/json.h"
#include "weights/json.h"
#include "weights/raw_dtype.h"

namespace cbst::weights {

static_assert(std::endian::native == std::endian::little,
              "the safetensors fast path copies little-endian bytes straight into tensors");

namespace {

struct Span {
  std::string name;
  RawDType type;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

const char* const kUnsupportedDtypes[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                          "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"};

RawDType parse_dtype(const std::string& name, const nlohmann::json& v) {
  if (!v.is_string()) CBST_THROW("tensor '", name, "': \"dtype\" is not a string");
  const std::string& text = v.get_ref<const std::string&>();
  if (auto t = raw_dtype_from_safetensors(text)) return *t;
  for (const char* u : kUnsupportedDtypes)
    if (text == u)
      CBST_THROW("tensor '", name, "' has dtype ", text, ", which cbst does not support; convert it to F32 or F16 first");
  CBST_THROW("tensor '", name, "' has unknown dtype '", printable(text), "'");
}

// Exact for every non-negative integer below 2^64 (nlohmann parses those as unsigned);
// a sign, a fraction, an exponent or a larger value makes it another kind of number.
uint64_t parse_u64(const std::string& name, const char* field, const nlohmann::json& v) {
  if (!v.is_number_unsigned())
    CBST_THROW("tensor '", name, "': \"", field, "\" holds '", v.is_number() ? v.dump() : v.type_name(),
               "', not a non-negative integer");
  return v.get<uint64_t>();
}

Span parse_entry(const std::string& name, const nlohmann::json& v) {
  if (!v.is_object()) CBST_THROW("tensor '", name, "': entry is a ", v.type_name(), ", not an object");
  const auto dtype = v.find("dtype"), shape = v.find("shape"), offsets = v.find("data_offsets");
  if (dtype == v.end() || shape == v.end() || offsets == v.end())
    CBST_THROW("tensor '", name, "': entry lacks \"dtype\", \"shape\" or \"data_offsets\"");
  Span s{name, parse_dtype(name, *dtype), {}, 0, 0};
  if (!shape->is_array()) CBST_THROW("tensor '", name, "': \"shape\" is not an array");
  if (shape->size() > size_t(kMaxDims))
    CBST_THROW("tensor '", name, "' has ", shape->size(), " dimensions; the engine supports ", kMaxDims);
  for (const nlohmann::json& d : *shape) {
    const uint64_t dim = parse_u64(name, "shape", d);
    if (dim > uint64_t(INT64_MAX)) CBST_THROW("tensor '", name, "': dimension ", dim, " is too large");
    s.shape.push_back(int64_t(dim));
  }
  if (!offsets->is_array() || offsets->size() != 2)
    CBST_THROW("tensor '", name, "': \"data_offsets\" is not a [begin, end] pair");
  s.begin = parse_u64(name, "data_offsets", (*offsets)[0]);
  s.end = parse_u64(name, "data_offsets", (*offsets)[1]);
  return s;
}

Tensor read_span(const ByteSource& src, uint64_t data_start, const Span& s) {
  const uint64_t file_offset = data_start + s.begin;
  const uint64_t nbytes = s.end - s.begin;
  const DType dt = engine_dtype_of(s.type);
  if (raw_dtype_of(dt) == s.type) {
    Tensor t = Tensor::empty(s.shape, dt);
    if (nbytes > 0) src.read(file_offset, t.raw_data(), nbytes);
    return t;
  }
  const std::vector<uint8_t> raw = src.read_vector(file_offset, nbytes);
  return decode_tensor(raw.data(), s.type, s.shape);
}

// Header JSON and the tensors in the order the writer lays them out: descending alignment,
// then name, as the reference writer does, so our files match theirs byte for byte.
struct Layout {
  std::string header;
  std::vector<std::pair<std::string, Tensor>> tensors;  // contiguous CPU tensors
};

Layout plan_layout(const TensorMap& map) {
  Layout layout;
  for (const auto& [name, t] : map) {
    CBST_CHECK(t.defined(), "tensor '", name, "' is undefined and cannot be saved");
    Tensor c = t.device().is_cpu() ? t : t.to(Device::cpu());
    layout.tensors.emplace_back(name, c.is_contiguous() ? c : c.contiguous());
  }
  std::stable_sort(layout.tensors.begin(), layout.tensors.end(), [](const auto& a, const auto& b) {
    const size_t sa = dtype_size(a.second.dtype()), sb = dtype_size(b.second.dtype());
    return sa != sb ? sa > sb : a.first < b.first;
  });
  // Compact, in this order, as the reference writer (serde_json) prints it.
  Json header = Json::object();
  if (!map.metadata.empty()) header["__metadata__"] = map.metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : layout.tensors) {
    CBST_CHECK(name != "__metadata__", "a tensor cannot be named __metadata__");
    const uint64_t end = offset + uint64_t(t.nbytes());
    header[name] = {{"dtype", raw_dtype_name(raw_dtype_of(t.dtype()))}, {"shape", t.shape()}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string& h = layout.header;
  try {
    h = header.dump();  // strict: a name that is not UTF-8 would make a header no reader accepts
  } catch (const Json::type_error&) {
    CBST_THROW("a tensor name or metadata entry is not valid UTF-8 and cannot be saved in safetensors");
  }
  // Space padding to a multiple of 8 puts every tensor of the data buffer on an 8-byte
  // boundary when the file is memory-mapped.
  while (h.size() % 8 != 0) h += ' ';
  return layout;
}

void append_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += char((v >> (8 * i)) & 0xff);
}

// The header: its length checked against the limit and the file, parsed as a JSON object.
nlohmann::json read_header(const ByteSource& src, uint64_t& n) {
  const uint64_t size = src.size();
  if (size < 8) CBST_THROW("safetensors: file is ", size, " bytes, too small for the 8-byte header length");
  Cursor cur(src);
  n = cur.u64();
  if (n > kSafetensorsMaxHeader)
    CBST_THROW("safetensors: header length ", n, " exceeds the limit of ", kSafetensorsMaxHeader,
               " bytes; the file is corrupt or not safetensors");
  if (n > size - 8)
    CBST_THROW("safetensors: header of ", n, " bytes does not fit in a file of ", size,
               " bytes; the file is truncated or corrupt");
  const std::string header = cur.string(n);
  nlohmann::json root;
  try {
    root = parse_json(header);
  } catch (const Error& e) {
    rethrow_with_context(e, "safetensors: header: ");
  }
  if (!root.is_object()) CBST_THROW("safetensors: header is a JSON ", root.type_name(), ", not an object");
  return root;
}

void read_metadata(const nlohmann::json& value, std::map<std::string, std::string>& out) {
  if (!value.is_object()) CBST_THROW("safetensors: __metadata__ is not an object");
  for (const auto& [mk, mv] : value.items()) {
    if (!mv.is_string()) CBST_THROW("safetensors: __metadata__ value of '", printable(mk), "' is not a string");
    out[mk] = mv.get<std::string>();
  }
}

}  // namespace

std::map<std::string, std::string> read_safetensors_metadata(const ByteSource& src) {
  uint64_t n = 0;
  const nlohmann::json root = read_header(src, n);
  std::map<std::string, std::string> metadata;
  if (const auto it = root.find("__metadata__"); it != root.end()) read_metadata(*it, metadata);
  return metadata;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  FileSource src(path);
  return reading_file(path, "reading its safetensors header", [&] { return read_safetensors_metadata(src); });
}

TensorMap read_safetensors(const ByteSource& src) {
  const uint64_t size = src.size();
  uint64_t n = 0;
  const nlohmann::json root = read_header(src, n);

  TensorMap map;
  map.format = "safetensors";
  std::vector<Span> spans;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      read_metadata(value, map.metadata);
      continue;
    }
    spans.push_back(parse_entry(key, value));
  }

  // The spans must tile the data buffer exactly, in offset order: no holes (polyglot files),
  // no overlap, nothing after the last tensor.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size - data_start;
  uint64_t expected_begin = 0;
  for (const Span& s : spans) {
    if (s.begin != expected_begin || s.end < s.begin)
      CBST_THROW("safetensors: tensor '", s.name, "' has data_offsets [", s.begin, ", ", s.end,
                 "] but the previous tensor ends at ", expected_begin,
                 " (spans must tile the data buffer); the file is corrupt");
    const uint64_t numel = checked_numel(s.shape, "tensor '" + s.name + "'");
    const uint64_t nbytes = checked_mul(numel, raw_dtype_size(s.type), "tensor '" + s.name + "' byte size");
    if (s.end - s.begin != nbytes)
      CBST_THROW("safetensors: tensor '", s.name, "' (", raw_dtype_name(s.type), " ", shape_str(s.shape), ") needs ",
                 nbytes, " bytes but data_offsets [", s.begin, ", ", s.end, "] span ", s.end - s.begin,
                 "; the file is corrupt");
    expected_begin = s.end;
  }
  if (expected_begin != data_size)
    CBST_THROW("safetensors: tensors cover ", expected_begin, " bytes of a data buffer of ", data_size, " bytes",
               expected_begin > data_size ? "; the file is truncated; was the download interrupted?"
                                          : "; the file has trailing bytes and is corrupt");

  for (const Span& s : spans) map.insert(s.name, read_span(src, data_start, s));
  return map;
}

TensorMap read_safetensors(const std::string& path) {
  FileSource src(path);
  return reading_file(path, "reading it as safetensors", [&] { return read_safetensors(src); });
}

std::vector<uint8_t> encode_safetensors(const TensorMap& tensors) {
  const Layout layout = plan_layout(tensors);
  std::string prefix;
  append_u64(prefix, layout.header.size());
  prefix += layout.header;
  std::vector<uint8_t> out(prefix.begin(), prefix.end());
  for (const auto& [name, t] : layout.tensors) {
    const auto* p = static_cast<const uint8_t*>(t.numel() ? t.raw_data() : nullptr);
    out.insert(out.end(), p, p + t.nbytes());
  }
  return out;
}

void write_safetensors(const std::string& path, const TensorMap& tensors) {
  const Layout layout = plan_layout(tensors);
  std::string prefix;
  append_u64(prefix, layout.header.size());
  prefix += layout.header;
  AtomicFile file(path);
  file.write(prefix.data(), prefix.size());
  for (const auto& [name, t] : layout.tensors)
    if (t.numel()) file.write(t.raw_data(), t.nbytes());
  file.commit();
}

}  // namespace cbst::weights
