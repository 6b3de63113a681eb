#include "weights/caffe.h"

#include <cstring>
#include <optional>

#include "weights/protobuf.h"
#include "weights/raw_dtype.h"

namespace cbst::weights {

namespace {

// NetParameter
constexpr uint32_t kNetName = 1, kNetLayersV1 = 2, kNetLayer = 100;
// LayerParameter
constexpr uint32_t kLayerName = 1, kLayerType = 2, kLayerBlobs = 7;
// V1LayerParameter
constexpr uint32_t kV1Layer = 1, kV1Name = 4, kV1Type = 5, kV1Blobs = 6;
// V0LayerParameter
constexpr uint32_t kV0Name = 1, kV0Type = 2, kV0Blobs = 50;
// V1LayerParameter.LayerType values whose blobs are weight and bias
constexpr uint64_t kV1Convolution = 4, kV1InnerProduct = 14, kV1Deconvolution = 39;
// BlobProto
constexpr uint32_t kNum = 1, kChannels = 2, kHeight = 3, kWidth = 4, kData = 5, kShape = 7, kDoubleData = 8;

struct Layer {
  std::string name;
  bool weight_bias = false;
  std::vector<std::span<const uint8_t>> blobs;
};

std::string as_string(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

bool is_weight_bias_type(const std::string& t) {
  return t == "Convolution" || t == "Deconvolution" || t == "InnerProduct" || t == "Scale" ||
         t == "conv" || t == "innerproduct" || t == "deconv";  // V0 spellings
}

void expect_wire(const ProtoField& f, uint8_t wire, const char* what) {
  if (f.wire != wire) CBST_THROW("caffemodel: ", what, " has wire type ", int(f.wire), ", expected ", int(wire), "; the file is corrupt");
}

Tensor parse_blob(std::span<const uint8_t> msg, const std::string& what) {
  std::optional<int64_t> dims4[4];
  Shape shape;
  std::vector<float> data;
  std::vector<double> ddata;
  ProtoReader r(msg);
  ProtoField f;
  while (r.next(f)) {
    switch (f.number) {
      case kNum:
      case kChannels:
      case kHeight:
      case kWidth:
        expect_wire(f, 0, "a blob dimension");
        dims4[f.number - 1] = int64_t(int32_t(uint32_t(f.value)));
        break;
      case kData:
        if (f.wire == 5) {
          float v;
          const uint32_t bits = uint32_t(f.value);
          std::memcpy(&v, &bits, 4);
          data.push_back(v);
        } else {
          expect_wire(f, 2, "blob data");
          if (f.bytes.size() % 4) CBST_THROW("caffemodel: ", what, ": packed float data of ", f.bytes.size(), " bytes; the file is corrupt");
          const size_t n = f.bytes.size() / 4;
          if (n == 0) break;  // an empty span may have a null data(), which memcpy must not see
          const size_t old = data.size();
          data.resize(old + n);
          std::memcpy(data.data() + old, f.bytes.data(), n * 4);  // little-endian on disk and host
        }
        break;
      case kDoubleData:
        if (f.wire == 1) {
          double v;
          std::memcpy(&v, &f.value, 8);
          ddata.push_back(v);
        } else {
          expect_wire(f, 2, "blob double_data");
          if (f.bytes.size() % 8) CBST_THROW("caffemodel: ", what, ": packed double data of ", f.bytes.size(), " bytes; the file is corrupt");
          const size_t n = f.bytes.size() / 8;
          if (n == 0) break;
          const size_t old = ddata.size();
          ddata.resize(old + n);
          std::memcpy(ddata.data() + old, f.bytes.data(), n * 8);
        }
        break;
      case kShape: {
        expect_wire(f, 2, "blob shape");
        shape.clear();
        ProtoReader sr(f.bytes);
        ProtoField d;
        while (sr.next(d)) {
          if (d.number != 1) continue;
          if (d.wire == 0) {
            shape.push_back(int64_t(d.value));
          } else {
            expect_wire(d, 2, "blob shape dims");
            size_t p = 0;
            while (p < d.bytes.size()) shape.push_back(int64_t(ProtoReader::varint(d.bytes, p)));
          }
          if (shape.size() > size_t(kMaxDims)) CBST_THROW("caffemodel: ", what, " has more than ", kMaxDims, " dimensions");
        }
        break;
      }
      default: break;  // diff, double_diff: gradients, not weights
    }
  }
  // Blob::FromProto: the legacy 4-D shape wins when any of its fields is present.
  if (dims4[0] || dims4[1] || dims4[2] || dims4[3]) {
    shape.clear();
    for (const auto& d : dims4) shape.push_back(d.value_or(0));
  }
  const bool is_double = !ddata.empty();
  const uint64_t count = is_double ? ddata.size() : data.size();
  const uint64_t expected = checked_numel(shape, what);
  if (count != expected)
    CBST_THROW("caffemodel: ", what, " has shape ", shape_str(shape), " (", expected, " values) but holds ", count,
               " values; the file is corrupt");
  if (is_double) return decode_tensor(reinterpret_cast<const uint8_t*>(ddata.data()), RawDType::f64, shape);
  return decode_tensor(reinterpret_cast<const uint8_t*>(data.data()), RawDType::f32, shape);
}

void parse_v0(std::span<const uint8_t> msg, Layer& layer) {
  ProtoReader r(msg);
  ProtoField f;
  while (r.next(f)) {
    if (f.number == kV0Name && f.wire == 2 && layer.name.empty()) layer.name = as_string(f.bytes);
    else if (f.number == kV0Type && f.wire == 2) layer.weight_bias = is_weight_bias_type(as_string(f.bytes));
    else if (f.number == kV0Blobs && f.wire == 2) layer.blobs.push_back(f.bytes);
  }
}

Layer parse_layer(std::span<const uint8_t> msg, bool v1) {
  Layer layer;
  ProtoReader r(msg);
  ProtoField f;
  while (r.next(f)) {
    if (v1) {
      if (f.number == kV1Name && f.wire == 2) layer.name = as_string(f.bytes);
      else if (f.number == kV1Type && f.wire == 0)
        layer.weight_bias = f.value == kV1Convolution || f.value == kV1InnerProduct || f.value == kV1Deconvolution;
      else if (f.number == kV1Blobs && f.wire == 2) layer.blobs.push_back(f.bytes);
      else if (f.number == kV1Layer && f.wire == 2) parse_v0(f.bytes, layer);
    } else {
      if (f.number == kLayerName && f.wire == 2) layer.name = as_string(f.bytes);
      else if (f.number == kLayerType && f.wire == 2) layer.weight_bias = is_weight_bias_type(as_string(f.bytes));
      else if (f.number == kLayerBlobs && f.wire == 2) layer.blobs.push_back(f.bytes);
    }
  }
  return layer;
}

}  // namespace

TensorMap read_caffemodel(const ByteSource& src) {
  const std::vector<uint8_t> bytes = src.read_vector(0, src.size());
  TensorMap map;
  map.format = "caffemodel";
  ProtoReader r(bytes);
  ProtoField f;
  size_t layer_count = 0;
  while (r.next(f)) {
    if (f.number == kNetName && f.wire == 2) {
      map.metadata["caffe.net_name"] = as_string(f.bytes);
      continue;
    }
    if ((f.number != kNetLayersV1 && f.number != kNetLayer) || f.wire != 2) continue;
    ++layer_count;
    const Layer layer = parse_layer(f.bytes, f.number == kNetLayersV1);
    for (size_t i = 0; i < layer.blobs.size(); ++i) {
      const std::string suffix = layer.weight_bias && i == 0 ? "weight"
                                 : layer.weight_bias && i == 1 ? "bias"
                                                               : std::to_string(i);
      const std::string name = (layer.name.empty() ? "layer" + std::to_string(layer_count - 1) : layer.name) + "." + suffix;
      map.insert(name, parse_blob(layer.blobs[i], "blob '" + name + "'"));
    }
  }
  if (layer_count == 0)
    CBST_THROW("caffemodel: no layers found; the file is empty, truncated, or not a caffemodel");
  return map;
}

TensorMap read_caffemodel(const std::string& path) {
  FileSource file(path);
  return reading_file(path, "reading it as caffemodel", [&] {
    const std::vector<uint8_t> bytes = file.read_vector(0, file.size());
    MemorySource src(bytes, path);
    return read_caffemodel(src);
  });
}

bool looks_like_caffemodel(const ByteSource& src) {
  // A NetParameter starts with one of its fields as a length-delimited or varint key:
  // name (0x0A), layers (0x12), input (0x1A), input_dim (0x20), state/other, or layer (A2 06).
  if (src.size() < 2) return false;
  uint8_t b[2];
  src.read(0, b, 2);
  if (b[0] == 0xA2 && b[1] == 0x06) return true;
  return b[0] == 0x0A || b[0] == 0x12 || b[0] == 0x1A || b[0] == 0x20 || b[0] == 0x42;
}

}  // namespace cbst::weights
