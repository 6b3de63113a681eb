// `cbst pseudolabel`: class thresholds and pseudo-labels from cached probabilities (DESIGN §7).
//
//   cbst pseudolabel --probs IN.safetensors [--prior PRIOR.safetensors] --policy st|cbst
//        --portion P [--label-size HxW] [--stride K] [--device cpu|cuda] [--confidence]
//        --out OUT.safetensors
//
// IN holds `probs` f32 (N, C, h, w). PRIOR holds `spatial_prior` (or `prior`, or its only
// tensor) f32 (C, Hp, Wp). OUT gets `labels` u8 (N, H, W) (255 = ignore), `thresholds`
// f32 (C), `pool_sizes` i64 (C), with --confidence `confidence` f32 (N, H, W) = max_c r_n(c),
// and the parameters in its metadata. A per-class table goes to stdout.
#include <cstdio>
#include <memory>
#include <string>

#include "selftrain/pseudo_labels.h"
#include "tools/cli/registry.h"
#include "tools/cli/sizes.h"
#include "weights/safetensors.h"

namespace {

using namespace cbst;

struct PseudolabelOptions {
  std::string probs;
  std::string prior;
  std::string policy = "cbst";
  double portion = 0.2;
  std::string label_size;
  int64_t stride = 1;
  std::string device = "cpu";
  bool confidence = false;
  std::string out;
};

LabelSize parse_label_size(const std::string& s) {
  if (s.empty()) return {};
  const cli::Size2 size = cli::parse_size(s, "--label-size", 1, 1 << 16, "1024x2048");
  return {size.height, size.width};
}

Tensor read_prior(const std::string& path) {
  weights::TensorMap map = weights::read_safetensors(path);
  for (const char* name : {"spatial_prior", "prior"})
    if (map.contains(name)) return map.at(name);
  CBST_CHECK(map.size() == 1, path, ": expected a tensor named 'spatial_prior' (or 'prior', or a ",
             "single tensor), found ", map.size(), " tensors");
  return map.begin()->second;
}

void run(const PseudolabelOptions& o) {
  const Device device = Device::parse(o.device);
  weights::TensorMap in = weights::read_safetensors(o.probs);
  CBST_CHECK(in.contains("probs"), o.probs, ": no tensor named 'probs'; expected probs f32 ",
             "(N, C, h, w), the softmax probabilities at network resolution");
  {
    // Thresholds rank the values: a NaN or a value outside [0, 1] would silently corrupt them.
    const Tensor p = in.at("probs").to(DType::f64).contiguous();
    const double* v = p.data<double>();
    for (int64_t i = 0; i < p.numel(); ++i)
      if (!(v[i] >= 0.0 && v[i] <= 1.0))
        CBST_THROW(o.probs, ": probs holds ", v[i], " at element ", i, " of ", p.numel(),
                   "; probabilities must lie in [0, 1] (write softmax outputs, not logits)");
  }
  const Tensor probs = in.at("probs").to(device);
  const Tensor prior = o.prior.empty() ? Tensor() : read_prior(o.prior).to(device);
  const LabelSize size = parse_label_size(o.label_size);

  const ThresholdParams tp{.policy = threshold_policy_from_name(o.policy),
                           .portion = o.portion,
                           .pool_stride = o.stride,
                           .label_size = size};
  const ClassThresholds thr = class_thresholds(probs, prior, tp);
  const PseudoLabels labels = pseudo_labels(
      probs, prior, thr.thresholds, {.label_size = size, .with_confidence = o.confidence});

  weights::TensorMap out;
  out.insert("labels", labels.labels.to(Device::cpu()));
  out.insert("thresholds", thr.thresholds.to(Device::cpu()));
  out.insert("pool_sizes", thr.pool_sizes.to(Device::cpu()));
  if (o.confidence) out.insert("confidence", labels.confidence.to(Device::cpu()));
  out.metadata = {{"policy", o.policy},
                  {"portion", std::to_string(o.portion)},
                  {"pool_stride", std::to_string(o.stride)},
                  {"spatial_prior", o.prior.empty() ? "none" : o.prior},
                  {"probs", o.probs}};
  weights::write_safetensors(o.out, out);

  const std::vector<float> t = out.at("thresholds").to_vector<float>();
  const std::vector<int64_t> n = out.at("pool_sizes").to_vector<int64_t>();
  const std::vector<uint8_t> l = out.at("labels").to_vector<uint8_t>();
  std::vector<int64_t> labelled(t.size(), 0);
  int64_t ignored = 0;
  for (uint8_t v : l) (v == kIgnoreLabel ? ignored : labelled[v]) += 1;
  std::printf("%-6s %12s %12s %12s\n", "class", "threshold", "pool size", "labelled");
  for (size_t c = 0; c < t.size(); ++c)
    std::printf("%-6zu %12.6g %12lld %12lld\n", c, double(t[c]), (long long)n[c],
                (long long)labelled[c]);
  std::printf("ignored %lld of %zu pixels; wrote %s\n", (long long)ignored, l.size(), o.out.c_str());
}

cbst::cli::Command reg(
    {.parent = "",
     .name = "pseudolabel",
     .help = "Class thresholds and pseudo-labels from cached probabilities (safetensors)"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<PseudolabelOptions>();
      cmd.add_option("--probs", o->probs, "safetensors file holding probs f32 (N, C, h, w)")
          ->required();
      cmd.add_option("--prior", o->prior, "safetensors file holding spatial_prior f32 (C, Hp, Wp)");
      cmd.add_option("--policy", o->policy, "st (one global pool) or cbst (one pool per class)")
          ->capture_default_str();
      cmd.add_option("--portion", o->portion, "portion p of each pool, in [0, 1]")
          ->capture_default_str();
      cmd.add_option("--label-size", o->label_size, "label resolution HxW (default: that of probs)");
      cmd.add_option("--stride", o->stride,
                     "pool sub-sampling K: pixels whose flat index in their image is a multiple "
                     "of K enter the pools")
          ->capture_default_str();
      cmd.add_option("--device", o->device, "cpu or cuda")->capture_default_str();
      cmd.add_flag("--confidence", o->confidence, "also write confidence = max_c s/threshold");
      cmd.add_option("--out", o->out, "output safetensors file")->required();
      cmd.callback([o] { run(*o); });
    });

}  // namespace
