// Spatial prior files: safetensors with a `prior` tensor f32 (C, H, W) and string metadata.
#include <charconv>
#include <cmath>
#include <string>
#include <tuple>

#include "selftrain/spatial_prior.h"
#include "weights/safetensors.h"

namespace cbst {
namespace {

// Shortest text that reads back to the same double, so metadata round-trips exactly.
std::string number_text(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

std::string size_text(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

// Metadata a person may have edited or another tool written: bad values are errors naming the
// key, missing ones keep the defaults.
double metadata_number(const std::string& path, const weights::TensorMap& map, const std::string& key,
                       double fallback) {
  const auto it = map.metadata.find(key);
  if (it == map.metadata.end()) return fallback;
  const std::string& s = it->second;
  double v = 0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size())
    CBST_THROW(path, ": metadata '", key, "' is '", s, "', not a number; rewrite the file with `cbst priors`");
  return v;
}

std::pair<double, double> metadata_size(const std::string& path, const weights::TensorMap& map,
                                        const std::string& key) {
  const auto it = map.metadata.find(key);
  if (it == map.metadata.end()) return {0, 0};
  const std::string& s = it->second;
  const size_t x = s.find('x');
  double h = 0, w = 0;
  const char* end = s.data() + s.size();
  const bool ok = x != std::string::npos &&
                  std::from_chars(s.data(), s.data() + x, h).ptr == s.data() + x &&
                  std::from_chars(s.data() + x + 1, end, w).ptr == end;
  if (!ok) CBST_THROW(path, ": metadata '", key, "' is '", s, "', not HxW; rewrite the file with `cbst priors`");
  return {h, w};
}

std::string names_of(const weights::TensorMap& map) {
  std::string s;
  for (const std::string& n : map.names()) s += (s.empty() ? "'" : ", '") + n + "'";
  return s.empty() ? "none" : s;
}

}  // namespace

void save_spatial_prior(const std::string& path, const Tensor& prior, const SpatialPriorMetadata& m) {
  CBST_CHECK(prior.defined() && prior.dim() == 3 && prior.dtype() == DType::f32,
             "save_spatial_prior: expected prior f32 (C, H, W), got ",
             prior.defined() ? prior.str() : std::string("an undefined tensor"));
  weights::TensorMap map;
  map.insert("prior", prior.to(Device::cpu()).contiguous());
  map.metadata = {{"format", "cbst-spatial-prior"},
                  {"num_classes", std::to_string(prior.size(0))},
                  {"grid", size_text(prior.size(1), prior.size(2))},
                  {"sigma", number_text(m.sigma)},
                  {"support", number_text(m.support)},
                  {"image_size", number_text(m.image_height) + "x" + number_text(m.image_width)},
                  {"images", std::to_string(m.images)},
                  {"source", m.source},
                  {"class_space", m.class_space}};
  weights::write_safetensors(path, map);
}

SpatialPrior load_spatial_prior(const std::string& path) {
  const weights::TensorMap map = weights::read_safetensors(path);
  if (!map.contains("prior"))
    CBST_THROW(path, ": no tensor named 'prior' (the file holds ", names_of(map),
               "); is this a spatial prior? Write one with `cbst priors`");
  Tensor prior = map.at("prior");
  if (prior.dim() != 3)
    CBST_THROW(path, ": tensor 'prior' has shape ", shape_str(prior.shape()),
               ", expected rank 3 (C, H, W): one map per class");
  const int64_t c = prior.size(0), h = prior.size(1), w = prior.size(2);
  if (c < 1 || c > 255 || h < 1 || w < 1)
    CBST_THROW(path, ": tensor 'prior' has shape ", shape_str(prior.shape()),
               "; expected 1 <= C <= 255 classes and a non-empty grid");
  if (!is_floating(prior.dtype()))
    CBST_THROW(path, ": tensor 'prior' is ", dtype_name(prior.dtype()), ", expected a float type (f32)");
  prior = prior.to(DType::f32).to(Device::cpu()).contiguous();
  const float* q = prior.data<float>();
  for (int64_t i = 0; i < prior.numel(); ++i)
    if (!std::isfinite(q[i]) || q[i] < 0)
      CBST_THROW(path, ": prior value ", q[i], " at (c=", i / (h * w), ", y=", (i / w) % h, ", x=", i % w,
                 ") is negative or not finite; a prior is a per-class distribution (clamp at 0 "
                 "or recompute it with `cbst priors`)");

  const double classes = metadata_number(path, map, "num_classes", double(c));
  if (classes != double(c))
    CBST_THROW(path, ": metadata says ", map.metadata.at("num_classes"), " classes but 'prior' has ",
               c, "; the file is inconsistent, recompute it with `cbst priors`");
  SpatialPrior out{.prior = prior, .metadata = {}};
  SpatialPriorMetadata& m = out.metadata;
  m.sigma = metadata_number(path, map, "sigma", m.sigma);
  m.support = metadata_number(path, map, "support", m.support);
  std::tie(m.image_height, m.image_width) = metadata_size(path, map, "image_size");
  m.images = int64_t(metadata_number(path, map, "images", 0));
  if (auto it = map.metadata.find("source"); it != map.metadata.end()) m.source = it->second;
  if (auto it = map.metadata.find("class_space"); it != map.metadata.end()) m.class_space = it->second;
  return out;
}

}  // namespace cbst
