// TensorMap: what every weight reader returns and the safetensors writer takes.
//
// An ordered name -> Tensor map (the file's order, so `inspect` and error messages follow
// the file) plus string metadata (safetensors `__metadata__`; the readers of other formats
// record the input convention the weights imply, see DESIGN §5). Names are the file's own
// (`features.0.weight`, `arg:conv1a_weight`, `conv1_1.weight`); mapping them onto a model's
// parameter names is a separate step (weights/ name mapping, models engineer), which can
// rename, reshape and drop entries through the methods below.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace cbst::weights {

class TensorMap {
 public:
  using Entry = std::pair<std::string, Tensor>;

  // Adds a tensor; a duplicate name is an error (a file that names a tensor twice is corrupt).
  void insert(const std::string& name, Tensor tensor);
  // Adds or replaces.
  void set(const std::string& name, Tensor tensor);
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws naming the missing tensor and the closest available names.
  const Tensor& at(const std::string& name) const;
  // Removes and returns the tensor (undefined tensor when absent).
  Tensor take(const std::string& name);
  bool erase(const std::string& name);
  void rename(const std::string& from, const std::string& to);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> names() const;
  std::vector<std::string> sorted_names() const;
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

  int64_t parameter_count() const;  // Σ numel
  uint64_t byte_count() const;       // Σ nbytes in engine dtypes

  // String metadata (safetensors `__metadata__`).
  std::map<std::string, std::string> metadata;
  // The container the map was read from: "safetensors", "pytorch-zip", "pytorch-legacy",
  // "mxnet", "caffemodel"; empty for maps built in memory. Not written to files.
  std::string format;
  // The file the map was read from (load_weights, load_checkpoint), for error messages.
  std::string source;

  // Metadata entry `key` as a decimal integer, `fallback` when absent. Anything else (text,
  // trailing characters, out of range) is an error naming the source, the key and the value.
  int64_t metadata_int(const std::string& key, int64_t fallback) const;
  uint64_t metadata_u64(const std::string& key, uint64_t fallback) const;
  // Throws naming the source, the first tensor and element that is NaN or infinite: such
  // weights make every prediction garbage (evaluation printed numbers, training blamed the
  // learning rate).
  void check_finite() const;

 private:
  void reindex();
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace cbst::weights
