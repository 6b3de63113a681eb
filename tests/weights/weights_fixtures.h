// Hand-written fixtures for the weight-reader tests: byte-exact minimal files of every
// format, built from the byte-level descriptions in the format specifications (pickle
// protocol 2, PyTorch's zip and legacy layouts, MXNet NDArray lists, protobuf).
// Nothing here is read from disk, so every test runs anywhere.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <zlib.h>

#include "engine/tensor.h"
#include "weights/byte_source.h"

namespace cbst::weights::testing {

using Bytes = std::vector<uint8_t>;

struct ByteWriter {
  Bytes b;
  void u8(uint8_t v) { b.push_back(v); }
  void u16(uint16_t v) { for (int i = 0; i < 2; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void i32(int32_t v) { u32(uint32_t(v)); }
  void i64(int64_t v) { u64(uint64_t(v)); }
  void str(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
  void raw(const Bytes& x) { b.insert(b.end(), x.begin(), x.end()); }
  void raw(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
};

template <class T>
Bytes to_bytes(const std::vector<T>& v) {
  Bytes out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// ---------------------------------------------------------------- pickle (protocol 2)

struct PickleWriter {
  ByteWriter w;
  uint32_t memo = 0;  // next memo index; start high to exercise LONG_BINPUT / LONG_BINGET
  std::map<std::string, uint32_t> global_memo;

  void proto() { w.u8(0x80); w.u8(2); }
  void op(uint8_t c) { w.u8(c); }
  void global(const std::string& module, const std::string& name) {
    const std::string key = module + "." + name;
    auto it = global_memo.find(key);
    if (it != global_memo.end()) return get(it->second);
    w.u8('c');
    w.str(module + "\n" + name + "\n");
    global_memo[key] = memo;
    put();
  }
  void put() {
    if (memo < 256) { w.u8('q'); w.u8(uint8_t(memo)); }
    else { w.u8('r'); w.u32(memo); }
    ++memo;
  }
  void get(uint32_t idx) {
    if (idx < 256) { w.u8('h'); w.u8(uint8_t(idx)); }
    else { w.u8('j'); w.u32(idx); }
  }
  void str(const std::string& s) { w.u8('X'); w.u32(uint32_t(s.size())); w.str(s); }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) { w.u8('K'); w.u8(uint8_t(v)); }
    else if (v >= 0 && v < 65536) { w.u8('M'); w.u16(uint16_t(v)); }
    else if (v >= INT32_MIN && v <= INT32_MAX) { w.u8('J'); w.i32(int32_t(v)); }
    else { w.u8(0x8A); w.u8(8); w.i64(v); }
  }
  void mark() { w.u8('('); }
  void tuple() { w.u8('t'); }
  void int_tuple(const std::vector<int64_t>& v) {
    if (v.empty()) return op(')');
    mark();
    for (int64_t x : v) integer(x);
    tuple();
  }
  void stop() { w.u8('.'); }
};

// One tensor of a state_dict pickle: a view of storage `key`.
struct PickledTensor {
  std::string name;
  std::string storage_class = "FloatStorage";
  std::string key;
  int64_t storage_numel = 0;
  int64_t offset = 0;
  Shape size;
  Shape stride;
  bool as_parameter = false;  // wrap in torch._utils._rebuild_parameter
};

// A state_dict pickle as torch.save writes it: OrderedDict() then SETITEMS of
// name -> _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict()).
// `legacy` writes the 6-element persistent ids of the pre-zip format.
inline Bytes state_dict_pickle(const std::vector<PickledTensor>& tensors, bool legacy, uint32_t memo_start = 0,
                               bool plain_dict = false) {
  PickleWriter p;
  p.memo = memo_start;
  p.proto();
  if (plain_dict) {
    p.op('}');
    p.put();
  } else {
    p.global("collections", "OrderedDict");
    p.op(')');
    p.op('R');
    p.put();
  }
  p.mark();
  for (const PickledTensor& t : tensors) {
    p.str(t.name);
    p.put();
    if (t.as_parameter) p.global("torch._utils", "_rebuild_parameter");
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.mark();
    p.mark();
    p.str("storage");
    p.global("torch", t.storage_class);
    p.str(t.key);
    p.str("cpu");
    p.integer(t.storage_numel);
    if (legacy) p.op('N');
    p.tuple();
    p.op('Q');
    p.integer(t.offset);
    p.int_tuple(t.size);
    p.int_tuple(t.stride);
    p.op(0x89);
    p.global("collections", "OrderedDict");
    p.op(')');
    p.op('R');
    p.tuple();
    p.op('R');
    p.put();
    if (t.as_parameter) {
      p.op(0x89);  // requires_grad
      p.global("collections", "OrderedDict");
      p.op(')');
      p.op('R');
      p.op(0x87);  // TUPLE3
      p.op('R');
    }
  }
  p.op('u');
  p.stop();
  return p.w.b;
}

// ---------------------------------------------------------------- zip (as torch.save writes it)

struct ZipMember {
  std::string name;
  Bytes data;
  Bytes deflated;  // when non-empty, stored with method 8 and these bytes
};

inline Bytes make_zip(const std::vector<ZipMember>& members) {
  ByteWriter w;
  struct Central { uint32_t crc; uint64_t csize, usize, offset; uint16_t method; std::string name; };
  std::vector<Central> central;
  for (const ZipMember& m : members) {
    const uint64_t offset = w.b.size();
    const bool deflate = !m.deflated.empty();
    const Bytes& payload = deflate ? m.deflated : m.data;
    // 64-byte alignment of the data through an 'FB' extra field of 'Z' bytes.
    const uint64_t base = offset + 30 + m.name.size() + 4;
    const uint16_t pad = uint16_t((64 - base % 64) % 64);
    w.u32(0x04034b50);
    w.u16(0);
    w.u16(0x0808);
    w.u16(deflate ? 8 : 0);
    w.u16(0);
    w.u16(0);
    w.u32(0);  // crc and sizes live in the data descriptor and the central directory
    w.u32(0);
    w.u32(0);
    w.u16(uint16_t(m.name.size()));
    w.u16(uint16_t(4 + pad));
    w.str(m.name);
    w.u8('F');
    w.u8('B');
    w.u16(pad);
    for (int i = 0; i < pad; ++i) w.u8('Z');
    w.raw(payload);
    const uint32_t crc = uint32_t(crc32_z(0, m.data.data(), m.data.size()));
    w.u32(0x08074b50);
    w.u32(crc);
    w.u32(uint32_t(payload.size()));
    w.u32(uint32_t(m.data.size()));
    central.push_back({crc, payload.size(), m.data.size(), offset, uint16_t(deflate ? 8 : 0), m.name});
  }
  const uint64_t cd_offset = w.b.size();
  for (const Central& c : central) {
    w.u32(0x02014b50);
    w.u16(0);
    w.u16(0);
    w.u16(0x0808);
    w.u16(c.method);
    w.u16(0);
    w.u16(0);
    w.u32(c.crc);
    w.u32(uint32_t(c.csize));
    w.u32(uint32_t(c.usize));
    w.u16(uint16_t(c.name.size()));
    w.u16(0);
    w.u16(0);
    w.u16(0);
    w.u16(0);
    w.u32(0);
    w.u32(uint32_t(c.offset));
    w.str(c.name);
  }
  const uint64_t cd_size = w.b.size() - cd_offset;
  const uint64_t z64 = w.b.size();
  w.u32(0x06064b50);
  w.u64(44);
  w.u16(0);
  w.u16(0);
  w.u32(0);
  w.u32(0);
  w.u64(central.size());
  w.u64(central.size());
  w.u64(cd_size);
  w.u64(cd_offset);
  w.u32(0x07064b50);
  w.u32(0);
  w.u64(z64);
  w.u32(1);
  w.u32(0x06054b50);
  w.u16(0);
  w.u16(0);
  w.u16(uint16_t(central.size()));
  w.u16(uint16_t(central.size()));
  w.u32(uint32_t(cd_size));
  w.u32(uint32_t(cd_offset));
  w.u16(0);
  return w.b;
}

// A zip .pth: <folder>/data.pkl, <folder>/data/<key>..., <folder>/version.
inline Bytes make_pth_zip(const Bytes& pickle, const std::map<std::string, Bytes>& storages,
                          const std::string& folder = "archive") {
  std::vector<ZipMember> members{{folder + "/data.pkl", pickle, {}}};
  for (const auto& [key, data] : storages) members.push_back({folder + "/data/" + key, data, {}});
  members.push_back({folder + "/version", {'3', '\n'}, {}});
  return make_zip(members);
}

// ---------------------------------------------------------------- legacy .pth

inline Bytes make_pth_legacy(const Bytes& pickle, const std::vector<std::pair<std::string, Bytes>>& storages,
                             const std::vector<int64_t>& numels) {
  ByteWriter w;
  const uint8_t magic[15] = {0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E};
  w.raw(magic, sizeof magic);
  const uint8_t protocol[6] = {0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E};
  w.raw(protocol, sizeof protocol);
  PickleWriter info;
  info.proto();
  info.op('}');
  info.mark();
  info.str("protocol_version");
  info.integer(1001);
  info.str("little_endian");
  info.op(0x88);
  info.str("type_sizes");
  info.op('}');
  info.mark();
  info.str("short");
  info.integer(2);
  info.str("int");
  info.integer(4);
  info.str("long");
  info.integer(4);
  info.op('u');
  info.op('u');
  info.stop();
  w.raw(info.w.b);
  w.raw(pickle);
  PickleWriter keys;
  keys.proto();
  keys.op(']');
  keys.mark();
  for (const auto& [k, data] : storages) keys.str(k);
  keys.op('e');
  keys.stop();
  w.raw(keys.w.b);
  for (size_t i = 0; i < storages.size(); ++i) {
    w.i64(numels[i]);
    w.raw(storages[i].second);
  }
  return w.b;
}

// ---------------------------------------------------------------- MXNet NDArray list

struct MxArray {
  std::string name;
  int32_t type_flag = 0;
  Shape shape;
  Bytes data;
};

// version: 0 legacy (u32 dims), 1 (0xF993FAC8), 2 (0xF993FAC9), 3 (0xF993FACA).
inline Bytes make_mxnet(const std::vector<MxArray>& arrays, int version, bool with_names = true) {
  ByteWriter w;
  w.u64(0x112);
  w.u64(0);
  w.u64(arrays.size());
  for (const MxArray& a : arrays) {
    if (version == 0) {
      w.u32(uint32_t(a.shape.size()));
      for (int64_t d : a.shape) w.u32(uint32_t(d));
    } else {
      w.u32(version == 1 ? 0xF993FAC8u : version == 2 ? 0xF993FAC9u : 0xF993FACAu);
      if (version >= 2) w.i32(0);  // dense
      w.i32(int32_t(a.shape.size()));
      for (int64_t d : a.shape) w.i64(d);
    }
    w.i32(1);  // cpu
    w.i32(0);
    w.i32(a.type_flag);
    w.raw(a.data);
  }
  w.u64(with_names ? arrays.size() : 0);
  if (with_names) {
    for (const MxArray& a : arrays) {
      w.u64(a.name.size());
      w.str(a.name);
    }
  }
  return w.b;
}

// ---------------------------------------------------------------- protobuf

struct ProtoWriter {
  Bytes b;
  void varint(uint64_t v) {
    while (v >= 0x80) {
      b.push_back(uint8_t(v | 0x80));
      v >>= 7;
    }
    b.push_back(uint8_t(v));
  }
  void key(uint32_t field, uint8_t wire) { varint(uint64_t(field) << 3 | wire); }
  void int_field(uint32_t field, int64_t v) { key(field, 0); varint(uint64_t(v)); }
  void bytes_field(uint32_t field, const Bytes& payload) {
    key(field, 2);
    varint(payload.size());
    b.insert(b.end(), payload.begin(), payload.end());
  }
  void string_field(uint32_t field, const std::string& s) { bytes_field(field, Bytes(s.begin(), s.end())); }
  void packed_floats(uint32_t field, const std::vector<float>& v) { bytes_field(field, to_bytes(v)); }
  void unpacked_floats(uint32_t field, const std::vector<float>& v) {
    for (float f : v) {
      key(field, 5);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      for (int i = 0; i < 4; ++i) b.push_back(uint8_t(bits >> (8 * i)));
    }
  }
};

// BlobProto with BlobShape dims (packed) or legacy 4-D dims, and float data packed or not.
inline Bytes caffe_blob(const std::vector<int64_t>& shape, const std::vector<float>& data, bool legacy_dims,
                        bool packed) {
  ProtoWriter p;
  if (legacy_dims) {
    for (size_t i = 0; i < shape.size(); ++i) p.int_field(uint32_t(i + 1), shape[i]);
  } else {
    ProtoWriter dims;
    ProtoWriter packed_dims;
    for (int64_t d : shape) packed_dims.varint(uint64_t(d));
    dims.bytes_field(1, packed_dims.b);
    p.bytes_field(7, dims.b);
  }
  if (packed) p.packed_floats(5, data);
  else p.unpacked_floats(5, data);
  return p.b;
}

inline std::vector<float> iota_floats(size_t n, float start = 0.f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + float(i);
  return v;
}

// Runs `load` on every proper prefix of `file` (each copied into a buffer of exactly its
// length, so an over-read is a real out-of-bounds access under a sanitizer) and returns how
// many threw cbst::Error. Any other exception or a crash fails the test.
inline size_t count_prefix_errors(const Bytes& file, const std::function<void(const ByteSource&)>& load) {
  size_t errors = 0;
  for (size_t n = 0; n < file.size(); ++n) {
    const Bytes prefix(file.begin(), file.begin() + std::ptrdiff_t(n));
    MemorySource src(prefix, "prefix");
    try {
      load(src);
    } catch (const Error&) {
      ++errors;
    }
  }
  return errors;
}

}  // namespace cbst::weights::testing
