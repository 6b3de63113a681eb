#include "weights/tensor_map.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <type_traits>

#include "weights/byte_source.h"

namespace cbst::weights {

void TensorMap::insert(const std::string& name, Tensor tensor) {
  if (contains(name)) CBST_THROW("tensor '", printable(name), "' appears twice; the file is corrupt");
  index_.emplace(name, entries_.size());
  entries_.emplace_back(name, std::move(tensor));
}

void TensorMap::set(const std::string& name, Tensor tensor) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    insert(name, std::move(tensor));
  } else {
    entries_[it->second].second = std::move(tensor);
  }
}

const Tensor& TensorMap::at(const std::string& name) const {
  auto it = index_.find(name);
  if (it != index_.end()) return entries_[it->second].second;
  // Suggest names sharing the longest prefix: a typo or a missing "module." prefix shows up.
  std::string hint;
  size_t best = 0;
  for (const Entry& e : entries_) {
    size_t common = 0;
    while (common < name.size() && common < e.first.size() && name[common] == e.first[common]) ++common;
    if (common > best) {
      best = common;
      hint = e.first;
    }
  }
  CBST_THROW("no tensor named '", name, "' among ", entries_.size(), " tensors",
             hint.empty() ? std::string() : "; closest: '" + hint + "'",
             "; list them with `cbst weights inspect`");
}

Tensor TensorMap::take(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return Tensor();
  Tensor t = std::move(entries_[it->second].second);
  entries_.erase(entries_.begin() + std::ptrdiff_t(it->second));
  reindex();
  return t;
}

bool TensorMap::erase(const std::string& name) { return take(name).defined(); }

void TensorMap::rename(const std::string& from, const std::string& to) {
  if (from == to) return;
  auto it = index_.find(from);
  if (it == index_.end()) CBST_THROW("cannot rename '", from, "': no such tensor");
  if (contains(to)) CBST_THROW("cannot rename '", from, "' to '", to, "': the name is taken");
  const size_t i = it->second;
  index_.erase(it);
  entries_[i].first = to;
  index_.emplace(to, i);
}

std::vector<std::string> TensorMap::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.first);
  return out;
}

std::vector<std::string> TensorMap::sorted_names() const {
  std::vector<std::string> out = names();
  std::sort(out.begin(), out.end());
  return out;
}

int64_t TensorMap::parameter_count() const {
  int64_t n = 0;
  for (const Entry& e : entries_) n += e.second.numel();
  return n;
}

uint64_t TensorMap::byte_count() const {
  uint64_t n = 0;
  for (const Entry& e : entries_) n += e.second.nbytes();
  return n;
}

void TensorMap::reindex() {
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
}

namespace {

template <class T>
T parse_metadata_integer(const TensorMap& m, const std::string& key, T fallback) {
  auto it = m.metadata.find(key);
  if (it == m.metadata.end()) return fallback;
  const std::string& text = it->second;
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    CBST_THROW(m.source.empty() ? std::string("checkpoint") : m.source, ": metadata '", printable(key), "' is '",
               printable(text), "', not ", std::is_signed_v<T> ? "an integer" : "a non-negative integer",
               " in range; the file is corrupt or was edited by hand");
  return value;
}

}  // namespace

int64_t TensorMap::metadata_int(const std::string& key, int64_t fallback) const {
  return parse_metadata_integer<int64_t>(*this, key, fallback);
}

uint64_t TensorMap::metadata_u64(const std::string& key, uint64_t fallback) const {
  return parse_metadata_integer<uint64_t>(*this, key, fallback);
}

void TensorMap::check_finite() const {
  for (const auto& [name, t] : entries_) {
    if (t.dtype() != DType::f32 && t.dtype() != DType::f64) continue;
    const Tensor c = t.device().is_cpu() ? t.contiguous() : t.to(Device::cpu()).contiguous();
    const int64_t n = c.numel();
    for (int64_t i = 0; i < n; ++i) {
      const double v = c.dtype() == DType::f32 ? double(c.data<float>()[i]) : c.data<double>()[i];
      if (!std::isfinite(v))
        CBST_THROW(source.empty() ? std::string("weights") : source, ": tensor '", printable(name), "' holds ", v,
                   " at element ", i, " of ", n, "; the weights are corrupt or come from a diverged run");
    }
  }
}

}  // namespace cbst::weights
