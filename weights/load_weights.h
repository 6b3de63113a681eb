// Entry points of weights/: read any supported weight file, save and load checkpoints.
//
//   TensorMap w = cbst::weights::load_weights("vgg16-397923af.pth");    // any format
//   ... map names/shapes onto a model (models/ name mapping) ...
//   cbst::weights::save_checkpoint("runs/x/checkpoints/round-1.safetensors", w);
//
// The format is detected from the content, never from the extension: zip magic (.pth zip),
// the pickled legacy magic number (.pth legacy), MXNet's 0x112 list magic, a safetensors
// header (u64 length then '{'), and last a protobuf NetParameter (.caffemodel). Every
// error names the file and says what was wrong.
#pragma once

#include <string>

#include "weights/byte_source.h"
#include "weights/tensor_map.h"

namespace cbst::weights {

enum class WeightFormat { unknown, safetensors, pth_zip, pth_legacy, mxnet, caffemodel };

const char* weight_format_name(WeightFormat f);
WeightFormat detect_weight_format(const ByteSource& src);

TensorMap load_weights(const ByteSource& src);
TensorMap load_weights(const std::string& path);

// The native checkpoint (safetensors, written atomically). load_checkpoint refuses other
// formats and points at `cbst weights convert`, and weights that are NaN or infinite.
void save_checkpoint(const std::string& path, const TensorMap& tensors);
TensorMap load_checkpoint(const std::string& path);

}  // namespace cbst::weights
