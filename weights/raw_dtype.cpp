#include "weights/raw_dtype.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "weights/byte_source.h"

namespace cbst::weights {

namespace {

struct RawInfo {
  RawDType type;
  const char* name;
  size_t size;
};

constexpr RawInfo kRawInfo[] = {
    {RawDType::boolean, "BOOL", 1}, {RawDType::u8, "U8", 1},     {RawDType::i8, "I8", 1},
    {RawDType::i16, "I16", 2},      {RawDType::u16, "U16", 2},   {RawDType::i32, "I32", 4},
    {RawDType::u32, "U32", 4},      {RawDType::i64, "I64", 8},   {RawDType::u64, "U64", 8},
    {RawDType::f16, "F16", 2},      {RawDType::bf16, "BF16", 2}, {RawDType::f32, "F32", 4},
    {RawDType::f64, "F64", 8},
};

const RawInfo& info(RawDType t) { return kRawInfo[size_t(t)]; }

// Bounds on a strided view's element count: kMaxViewExpansion times its storage, or
// kMinViewLimit elements (4 MB of f32) for views of small storages, whichever is larger.
constexpr uint64_t kMaxViewExpansion = 16;
constexpr uint64_t kMinViewLimit = uint64_t(1) << 20;

template <class T>
T load_le(const uint8_t* p, size_t size, bool big_endian) {
  uint8_t b[8];
  if (big_endian) {
    for (size_t i = 0; i < size; ++i) b[i] = p[size - 1 - i];
  } else {
    std::memcpy(b, p, size);
  }
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

template <class Dst, class Src>
void convert(Dst* out, const uint8_t* src, int64_t n, bool big_endian) {
  for (int64_t i = 0; i < n; ++i) out[i] = Dst(load_le<Src>(src + i * sizeof(Src), sizeof(Src), big_endian));
}

}  // namespace

size_t raw_dtype_size(RawDType t) { return info(t).size; }
const char* raw_dtype_name(RawDType t) { return info(t).name; }

std::optional<RawDType> raw_dtype_from_safetensors(std::string_view name) {
  for (const RawInfo& i : kRawInfo)
    if (name == i.name) return i.type;
  return std::nullopt;
}

RawDType raw_dtype_of(DType t) {
  switch (t) {
    case DType::f32: return RawDType::f32;
    case DType::f64: return RawDType::f64;
    case DType::u8: return RawDType::u8;
    case DType::i32: return RawDType::i32;
    case DType::i64: return RawDType::i64;
    case DType::bf16: return RawDType::bf16;
  }
  CBST_THROW("unknown engine dtype ", int(t));
}

DType engine_dtype_of(RawDType t) {
  switch (t) {
    case RawDType::boolean:
    case RawDType::u8: return DType::u8;
    case RawDType::i8:
    case RawDType::i16:
    case RawDType::u16:
    case RawDType::i32: return DType::i32;
    case RawDType::u32:
    case RawDType::i64:
    case RawDType::u64: return DType::i64;
    case RawDType::f16:
    case RawDType::bf16:
    case RawDType::f32: return DType::f32;
    case RawDType::f64: return DType::f64;
  }
  CBST_THROW("unknown raw dtype ", int(t));
}

// IEEE binary16 -> binary32, exact for every input including subnormals, inf and NaN.
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      // Subnormal: shift the mantissa up until its leading 1 reaches the implicit bit.
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// A zero dimension makes the tensor empty whatever the others are, so it is looked for
// first: [2^40, 2^40, 0] is a valid empty tensor, not an overflow.
uint64_t checked_numel(const Shape& shape, std::string_view what) {
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) CBST_THROW(what, ": negative dimension ", d, " in shape ", shape_str(shape), "; the file is corrupt");
    empty = empty || d == 0;
  }
  if (empty) return 0;
  uint64_t n = 1;
  for (int64_t d : shape) n = checked_mul(n, uint64_t(d), std::string(what) + ": element count");
  if (n > uint64_t(INT64_MAX))
    CBST_THROW(what, ": shape ", shape_str(shape), " has more than 2^63 elements; the file is corrupt");
  return n;
}

Tensor decode_tensor(const uint8_t* src, RawDType type, const Shape& shape, bool big_endian) {
  const int64_t n = int64_t(checked_numel(shape, "tensor"));
  const DType dt = engine_dtype_of(type);
  checked_mul(uint64_t(n), std::max(raw_dtype_size(type), dtype_size(dt)), "tensor: byte size");
  Tensor t = Tensor::empty(shape, dt);
  if (n == 0) return t;
  void* dst = t.raw_data();
  switch (type) {
    case RawDType::boolean:
      for (int64_t i = 0; i < n; ++i) static_cast<uint8_t*>(dst)[i] = src[i] != 0;
      break;
    case RawDType::u8: std::memcpy(dst, src, size_t(n)); break;
    case RawDType::i8: convert<int32_t, int8_t>(static_cast<int32_t*>(dst), src, n, big_endian); break;
    case RawDType::i16: convert<int32_t, int16_t>(static_cast<int32_t*>(dst), src, n, big_endian); break;
    case RawDType::u16: convert<int32_t, uint16_t>(static_cast<int32_t*>(dst), src, n, big_endian); break;
    case RawDType::i32: convert<int32_t, int32_t>(static_cast<int32_t*>(dst), src, n, big_endian); break;
    case RawDType::u32: convert<int64_t, uint32_t>(static_cast<int64_t*>(dst), src, n, big_endian); break;
    case RawDType::i64: convert<int64_t, int64_t>(static_cast<int64_t*>(dst), src, n, big_endian); break;
    case RawDType::u64: {
      auto* out = static_cast<int64_t*>(dst);
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t v = load_le<uint64_t>(src + 8 * i, 8, big_endian);
        if (v > uint64_t(INT64_MAX))
          CBST_THROW("u64 value ", v, " does not fit in i64, the engine's widest integer type");
        out[i] = int64_t(v);
      }
      break;
    }
    case RawDType::f16: {
      auto* out = static_cast<float*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = half_to_float(load_le<uint16_t>(src + 2 * i, 2, big_endian));
      break;
    }
    case RawDType::bf16: {
      auto* out = static_cast<float*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = float_from_bf16_bits(load_le<uint16_t>(src + 2 * i, 2, big_endian));
      break;
    }
    case RawDType::f32: convert<float, float>(static_cast<float*>(dst), src, n, big_endian); break;
    case RawDType::f64: convert<double, double>(static_cast<double*>(dst), src, n, big_endian); break;
  }
  return t;
}

Tensor decode_strided(const uint8_t* storage, uint64_t storage_numel, RawDType type,
                      int64_t offset, const Shape& sizes, const Shape& strides,
                      bool big_endian, std::string_view what) {
  if (sizes.size() != strides.size())
    CBST_THROW(what, ": size ", shape_str(sizes), " and stride ", shape_str(strides),
               " have different ranks; the file is corrupt");
  if (sizes.size() > size_t(kMaxDims))
    CBST_THROW(what, ": ", sizes.size(), " dimensions, more than the engine's ", kMaxDims);
  const uint64_t numel = checked_numel(sizes, what);
  if (offset < 0) CBST_THROW(what, ": negative storage offset ", offset, "; the file is corrupt");
  const size_t esize = raw_dtype_size(type);
  if (numel == 0) return decode_tensor(nullptr, type, sizes, big_endian);

  // The last element reached is offset + Σ (size-1)·stride; it must lie inside the storage.
  uint64_t last = uint64_t(offset);
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (strides[d] < 0) CBST_THROW(what, ": negative stride ", strides[d], "; the file is corrupt");
    last = checked_add(last, checked_mul(uint64_t(sizes[d] - 1), uint64_t(strides[d]), what), what);
  }
  if (last >= storage_numel)
    CBST_THROW(what, ": view (offset ", offset, ", size ", shape_str(sizes), ", stride ",
               shape_str(strides), ") reaches element ", last, " of a storage of ", storage_numel,
               " elements; the file is corrupt");
  // Only overlapping strides (zero strides above all) make a view larger than its storage;
  // PyTorch saves such views rarely and never hugely, while a hostile one turns one stored
  // float into 2^40 decoded ones.
  const uint64_t max_numel = std::max(checked_mul(storage_numel, kMaxViewExpansion, what), kMinViewLimit);
  if (numel > max_numel)
    CBST_THROW(what, ": view of ", numel, " elements (size ", shape_str(sizes), ", stride ", shape_str(strides),
               ") repeats a storage of ", storage_numel, " elements more than ", kMaxViewExpansion,
               "-fold; the file is corrupt or hostile");

  if (strides == contiguous_strides(sizes))
    return decode_tensor(storage + uint64_t(offset) * esize, type, sizes, big_endian);

  // Gather the strided elements into a packed buffer with an odometer over the indices.
  std::vector<uint8_t> packed(checked_mul(numel, esize, what));
  std::vector<int64_t> index(sizes.size(), 0);
  for (uint64_t i = 0; i < numel; ++i) {
    uint64_t e = uint64_t(offset);
    for (size_t d = 0; d < sizes.size(); ++d) e += uint64_t(index[d]) * uint64_t(strides[d]);
    std::memcpy(packed.data() + i * esize, storage + e * esize, esize);
    for (size_t d = sizes.size(); d-- > 0;) {
      if (++index[d] < sizes[d]) break;
      index[d] = 0;
    }
  }
  return decode_tensor(packed.data(), type, sizes, big_endian);
}

}  // namespace cbst::weights
