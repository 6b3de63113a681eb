// Caffe `.caffemodel` (binary NetParameter), read with our own protobuf wire reader.
// Ours: libprotobuf would need caffe.proto compiled into the build for the few fields read here.
//
// Both the current `layer` field (100, LayerParameter) and the deprecated `layers` field
// (2, V1LayerParameter, with its optional V0 `layer`) are read. A blob's shape is its
// legacy 4-D (num, channels, height, width) when any of those is present, as
// Blob::FromProto does (so an old InnerProduct weight is (1, 1, M, N)), else BlobShape.
// Data comes from `double_data` (f64) when present, else `data` (f32), packed or not.
//
// Names: blobs of Convolution, Deconvolution, InnerProduct and Scale layers are
// `<layer>.weight` and `<layer>.bias` (Caffe's order: weight, then bias); any further blob,
// and every blob of other layer types (BatchNorm's mean/variance/factor, PReLU, ...), is
// `<layer>.<blob index>`. Layers without blobs are absent. Shapes are kept as stored; the
// name mapping reshapes (fc6 (4096, 25088) -> (4096, 512, 7, 7)) by element count.
#pragma once

#include <string>

#include "weights/byte_source.h"
#include "weights/tensor_map.h"

namespace cbst::weights {

TensorMap read_caffemodel(const ByteSource& src);
TensorMap read_caffemodel(const std::string& path);

// Whether the first bytes look like a NetParameter (used by format detection only after
// every format with a magic number has been ruled out).
bool looks_like_caffemodel(const ByteSource& src);

}  // namespace cbst::weights
