#include "weights/load_weights.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "weights/caffe.h"
#include "weights/mxnet.h"
#include "weights/pth.h"
#include "weights/safetensors.h"

namespace cbst::weights {

namespace {

uint64_t le64(const uint8_t* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | b[i];
  return v;
}

bool json_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string hex_prefix(const uint8_t* b, size_t n) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", b[i]);
    if (i) s += ' ';
    s += buf;
  }
  return s;
}

}  // namespace

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::unknown: return "unknown";
    case WeightFormat::safetensors: return "safetensors";
    case WeightFormat::pth_zip: return "pytorch-zip";
    case WeightFormat::pth_legacy: return "pytorch-legacy";
    case WeightFormat::mxnet: return "mxnet";
    case WeightFormat::caffemodel: return "caffemodel";
  }
  return "?";
}

WeightFormat detect_weight_format(const ByteSource& src) {
  uint8_t head[16] = {};
  const size_t n = size_t(std::min<uint64_t>(src.size(), sizeof head));
  src.read(0, head, n);
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return WeightFormat::pth_zip;
  if (n >= 2 && head[0] == 0x80 && head[1] == 0x02) return WeightFormat::pth_legacy;
  if (n >= 8 && le64(head) == kMxnetListMagic) return WeightFormat::mxnet;
  // safetensors: a plausible header length, then JSON (the reference accepts leading spaces).
  if (n >= 8 && le64(head) <= kSafetensorsMaxHeader && le64(head) >= 2 &&
      (n == 8 || head[8] == '{' || json_space(head[8])))
    return WeightFormat::safetensors;
  if (looks_like_caffemodel(src)) return WeightFormat::caffemodel;
  return WeightFormat::unknown;
}

namespace {

TensorMap load_by_content(const ByteSource& src, WeightFormat format) {
  switch (format) {
    case WeightFormat::safetensors: return read_safetensors(src);
    case WeightFormat::pth_zip: return read_pth_zip(src);
    case WeightFormat::pth_legacy: return read_pth_legacy(src);
    case WeightFormat::mxnet: return read_mxnet_params(src);
    case WeightFormat::caffemodel: return read_caffemodel(src);
    case WeightFormat::unknown: break;
  }
  uint8_t head[8] = {};
  const size_t n = size_t(std::min<uint64_t>(src.size(), sizeof head));
  src.read(0, head, n);
  CBST_THROW("unknown weight format (", src.size(), " bytes, starting ", n ? hex_prefix(head, n) : "<empty>",
             "); expected safetensors, PyTorch .pth (zip or legacy), MXNet .params or Caffe .caffemodel");
}

}  // namespace

TensorMap load_weights(const ByteSource& src) {
  const WeightFormat format =
      reading_file(src.name(), "detecting its format", [&] { return detect_weight_format(src); });
  const std::string stage = std::string("reading it as ") + weight_format_name(format) + " (" +
                            std::to_string(src.size()) + " bytes)";
  return reading_file(src.name(), stage, [&] {
    TensorMap map = load_by_content(src, format);
    map.source = src.name();
    return map;
  });
}

TensorMap load_weights(const std::string& path) {
  FileSource src(path);
  return load_weights(src);
}

void save_checkpoint(const std::string& path, const TensorMap& tensors) { write_safetensors(path, tensors); }

TensorMap load_checkpoint(const std::string& path) {
  FileSource src(path);
  const WeightFormat f = detect_weight_format(src);
  if (f != WeightFormat::safetensors)
    CBST_THROW(path, ": a checkpoint must be safetensors, this file looks like ", weight_format_name(f),
               "; convert it with `cbst weights convert IN OUT.safetensors --model NAME`");
  return reading_file(path, "reading the checkpoint (" + std::to_string(src.size()) + " bytes)", [&] {
    TensorMap map = read_safetensors(src);
    map.source = path;
    map.check_finite();
    return map;
  });
}

}  // namespace cbst::weights
