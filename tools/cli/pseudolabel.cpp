// `cbst pseudolabel`: class thresholds and pseudo-labels (DESIGN §7), from one of two sources
// of probabilities, with the vocabulary of `cbst adapt` (--method, --portion, --pool-stride,
// --pool-sampling, --prior):
//
//   a model run   cbst pseudolabel --checkpoint C [--model NAME] --data KIND=PATH[:SPLIT]
//                      [--split S] [--scales …] [--flip] --method st|cbst|st-sp|cbst-sp
//                      --portion P --out DIR
//                 labels every image as one round of `cbst adapt` does (selftrain/round_labels.h):
//                 DIR/<stem>.png (class ids, 255 = ignore), DIR/<stem>_color.png for the first
//                 --previews images, DIR/thresholds.json.
//   saved probabilities  cbst pseudolabel --probs IN.safetensors [--label-size HxW]
//                      [--confidence] --method … --portion P --out OUT.safetensors
//                 IN holds `probs` f32 (N, C, h, w); OUT gets `labels` u8 (N, H, W) (255 =
//                 ignore), `thresholds` f32 (C), `pool_sizes` i64 (C), with --confidence
//                 `confidence` f32 (N, H, W) = max_c r_n(c), and the parameters in its metadata.
//
// The -sp methods need --prior PRIOR.safetensors holding `spatial_prior` (or `prior`, or its
// only tensor) f32 (C, Hp, Wp). Both print a per-class table with the class names.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/label_map.h"
#include "engine/atomic_file.h"
#include "engine/dist.h"
#include "engine/json.h"
#include "models/weight_import.h"
#include "selftrain/round_labels.h"
#include "selftrain/run_dir.h"
#include "tools/cli/model_options.h"
#include "tools/cli/registry.h"
#include "tools/cli/validators.h"
#include "tools/cli/sizes.h"
#include "weights/safetensors.h"

namespace {

using namespace cbst;

struct PseudolabelOptions {
  // Source: saved probabilities ...
  std::string probs;
  std::string label_size;
  bool confidence = false;
  // ... or a model run.
  std::string checkpoint;
  std::string model;
  int64_t classes = 0;
  bool allow_partial = false;
  std::string data;
  std::string split;  // empty: the spec's, else train
  std::string list_file;
  std::vector<double> scales = {1.0};
  bool flip = false;
  std::string input_convention;
  int64_t previews = 4;
  // Labelling, as `cbst adapt`.
  std::string method = "cbst";
  std::string prior;
  double portion = 0.2;
  int64_t pool_stride = 0;  // 0: 1, or 4 with --pool-sampling authors
  std::string pool_sampling = "pixel-index";
  std::string device = "cpu";
  std::string out;
  std::vector<std::string> probs_only_given, model_only_given;
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

bool with_prior(const PseudolabelOptions& o) { return o.method == "st-sp" || o.method == "cbst-sp"; }

ThresholdPolicy policy_of(const PseudolabelOptions& o) {
  return o.method == "st" || o.method == "st-sp" ? ThresholdPolicy::st : ThresholdPolicy::cbst;
}

int64_t pool_stride_of(const PseudolabelOptions& o) {
  return o.pool_stride > 0 ? o.pool_stride : o.pool_sampling == "authors" ? 4 : 1;
}

// Class names for C classes: the class space's when C is one (19, 16, 13), else the ids.
std::vector<std::string> class_names(int64_t classes) {
  std::vector<std::string> names;
  if (classes == 19 || classes == 16 || classes == 13)
    for (const data::ClassInfo& c : data::class_table(data::class_space_for(int(classes)))) names.push_back(c.name);
  else
    for (int64_t c = 0; c < classes; ++c) names.push_back(std::to_string(c));
  return names;
}

// A probability for people: four decimals, or two significant digits below 0.001.
std::string probability_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v == 0 || v >= 1e-3 ? "%.4f" : "%.1e", v);
  return buf;
}

std::string percent_str(double fraction) { return format_fixed(100.0 * fraction, 1) + "%"; }

struct ClassRow {
  double threshold = 0;
  int64_t pool = 0, labelled = 0, checked = 0, correct = 0;
};

void print_table(const std::vector<ClassRow>& rows, int64_t pixels, bool accuracy) {
  const std::vector<std::string> names = class_names(int64_t(rows.size()));
  std::printf("%-14s %10s %12s %12s %8s%s\n", "class", "threshold", "pool", "labelled", "of all",
              accuracy ? "  correct" : "");
  int64_t labelled = 0, checked = 0, correct = 0;
  for (size_t c = 0; c < rows.size(); ++c) {
    const ClassRow& r = rows[c];
    std::printf("%-14s %10s %12lld %12lld %8s", names[c].c_str(), probability_str(r.threshold).c_str(),
                (long long)r.pool, (long long)r.labelled, percent_str(double(r.labelled) / double(pixels)).c_str());
    if (accuracy) std::printf(" %8s", r.checked ? percent_str(double(r.correct) / double(r.checked)).c_str() : "-");
    std::printf("\n");
    labelled += r.labelled;
    checked += r.checked;
    correct += r.correct;
  }
  std::printf("labelled %s of %lld pixels (%lld ignored)", percent_str(double(labelled) / double(pixels)).c_str(),
              (long long)pixels, (long long)(pixels - labelled));
  if (accuracy && checked) std::printf(", %s of them correct", percent_str(double(correct) / double(checked)).c_str());
  std::printf("\n");
}

void check_sources(const PseudolabelOptions& o) {
  const bool from_probs = !o.probs.empty(), from_model = !o.checkpoint.empty() || !o.data.empty();
  if (from_probs == from_model)
    CBST_THROW(from_probs ? "--probs and --checkpoint/--data are two sources of probabilities; give one"
                          : "cbst pseudolabel needs probabilities: --checkpoint C --data KIND=PATH (run a model) "
                            "or --probs FILE.safetensors (saved ones)");
  if (from_model && (o.checkpoint.empty() || o.data.empty()))
    CBST_THROW("labelling with a model needs both --checkpoint FILE and --data KIND=PATH; got only ",
               o.checkpoint.empty() ? "--data" : "--checkpoint");
  if (from_probs && !o.model_only_given.empty())
    CBST_THROW(o.model_only_given.front(), " applies to a model run (--checkpoint), not to --probs");
  if (from_model && !o.probs_only_given.empty())
    CBST_THROW(o.probs_only_given.front(), " applies to --probs only; a model run labels at the images' size");
  if (with_prior(o) && o.prior.empty())
    CBST_THROW("--method ", o.method, " needs a spatial prior: make one with `cbst priors --data SOURCE --size HxW "
               "--out prior.safetensors` and pass --prior");
  if (!with_prior(o) && !o.prior.empty())
    CBST_THROW("--prior is for --method st-sp or cbst-sp, not ", o.method, "; drop --prior or use --method ",
               o.method, "-sp");
}

void run_from_probs(const PseudolabelOptions& o) {
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

  const ThresholdParams tp{.policy = policy_of(o),
                           .portion = o.portion,
                           .pool_stride = pool_stride_of(o),
                           .sampling = pool_sampling_from_name(o.pool_sampling),
                           .label_size = size};
  const ClassThresholds thr = class_thresholds(probs, prior, tp);
  const PseudoLabels labels = pseudo_labels(
      probs, prior, thr.thresholds, {.label_size = size, .with_confidence = o.confidence});

  weights::TensorMap out;
  out.insert("labels", labels.labels.to(Device::cpu()));
  out.insert("thresholds", thr.thresholds.to(Device::cpu()));
  out.insert("pool_sizes", thr.pool_sizes.to(Device::cpu()));
  if (o.confidence) out.insert("confidence", labels.confidence.to(Device::cpu()));
  out.metadata = {{"method", o.method},
                  {"portion", json_text(Json(o.portion))},
                  {"pool_stride", std::to_string(pool_stride_of(o))},
                  {"pool_sampling", o.pool_sampling},
                  {"spatial_prior", o.prior.empty() ? "none" : o.prior},
                  {"probs", o.probs}};
  // Under mpirun every rank computes the same result from the same file; rank 0 writes it.
  if (dist::world().rank() == 0) weights::write_safetensors(o.out, out);

  const std::vector<float> t = out.at("thresholds").to_vector<float>();
  const std::vector<int64_t> n = out.at("pool_sizes").to_vector<int64_t>();
  const std::vector<uint8_t> l = out.at("labels").to_vector<uint8_t>();
  std::vector<ClassRow> rows(t.size());
  for (size_t c = 0; c < t.size(); ++c) rows[c] = {.threshold = t[c], .pool = n[c]};
  for (uint8_t v : l)
    if (v != kIgnoreLabel) ++rows[v].labelled;
  print_table(rows, int64_t(l.size()), false);
  std::printf("wrote %s\n", o.out.c_str());
}

void run_from_model(const PseudolabelOptions& o) {
  const Device device = Device::parse(o.device);
  const auto [spec, split] = cli::dataset_and_split(o.data, o.split, "train", "--data", "--split");
  const data::Dataset ds = data::open_dataset(spec, {.split = split, .list_file = o.list_file});
  const LoadedModel loaded =
      load_model(o.checkpoint, {.model = o.model, .num_classes = o.classes, .default_classes = default_num_classes(ds),
                                .allow_partial = o.allow_partial, .inference = true});
  SegmentationModel& model = *loaded.model;
  const data::ClassSpace space = data::class_space_for(int(model.num_classes()));
  Tensor prior;
  if (!o.prior.empty()) {
    prior = read_prior(o.prior);
    CBST_CHECK(prior.dim() == 3 && prior.size(0) == model.num_classes(), o.prior, ": the prior is ",
               shape_str(prior.shape()), " but the model has ", model.num_classes(), " classes; expected (",
               model.num_classes(), ", Hp, Wp): make it with `cbst priors --classes ", model.num_classes(), "`");
    prior = prior.to(device);
  }
  model.to(device);
  std::fprintf(stderr, "model: %s\n", loaded.description.c_str());
  std::fprintf(stderr, "labelling %s: %s, portion %s, pool stride %lld (%s)%s\n", ds.describe().c_str(),
               o.method.c_str(), json_text(Json(o.portion)).c_str(), (long long)pool_stride_of(o),
               o.pool_sampling.c_str(), o.prior.empty() ? "" : (", prior " + o.prior).c_str());

  InferenceOptions inference;
  inference.scales = o.scales;
  inference.flip = o.flip;
  const RoundLabels r = label_dataset(
      model, ds, prior,
      {.policy = policy_of(o), .portion = o.portion, .pool_stride = pool_stride_of(o),
       .sampling = pool_sampling_from_name(o.pool_sampling), .inference = inference,
       .input_convention = o.input_convention.empty() ? loaded.input_convention : o.input_convention,
       .device = device, .space = space, .previews = o.previews},
      {.dir = o.out, .name = "pseudolabel"});

  std::vector<ClassRow> rows(r.thresholds.size());
  for (size_t c = 0; c < rows.size(); ++c)
    rows[c] = {.threshold = r.thresholds[c], .pool = r.pool_sizes[c], .labelled = r.labelled[c],
               .checked = r.checked[c], .correct = r.correct[c]};
  print_table(rows, r.pixels, r.has_ground_truth);

  Json record = {{"checkpoint", o.checkpoint}, {"model", model.name()}, {"data", spec}, {"split", split},
                 {"images", int64_t(ds.size())}, {"method", o.method}, {"portion", o.portion},
                 {"pool_stride", pool_stride_of(o)}, {"pool_sampling", o.pool_sampling},
                 {"spatial_prior", o.prior.empty() ? "none" : o.prior}, {"scales", o.scales}, {"flip", o.flip},
                 {"classes", class_names(model.num_classes())}, {"thresholds", r.thresholds},
                 {"pool_sizes", r.pool_sizes}, {"labelled", r.labelled}, {"pixels", r.pixels}};
  if (r.has_ground_truth) {
    record["checked"] = r.checked;
    record["correct"] = r.correct;
  }
  // The ranks shared the labelling (each wrote its share of the maps); rank 0 writes the summary.
  if (dist::world().rank() == 0) write_text_atomic(o.out + "/thresholds.json", json_text(record, 2) + "\n");
  std::printf("wrote %lld label maps (class ids, 255 = ignore) and thresholds.json to %s\n", (long long)ds.size(),
              o.out.c_str());
}

cbst::cli::Command reg(
    {.parent = "",
     .name = "pseudolabel",
     .help = "Class thresholds and pseudo-labels, from a model run over a dataset or from saved probabilities"},
    [](CLI::App& cmd) {
      auto o = std::make_shared<PseudolabelOptions>();
      std::vector<CLI::Option*> probs_only, model_only;
      cmd.add_option("--probs", o->probs, "saved probabilities: a safetensors file holding probs f32 (N, C, h, w)");
      probs_only.push_back(
          cmd.add_option("--label-size", o->label_size, "--probs: label resolution HxW (default: that of probs)"));
      probs_only.push_back(
          cmd.add_flag("--confidence", o->confidence, "--probs: also write confidence = max_c s/threshold"));
      cmd.add_option("--checkpoint", o->checkpoint,
                     "a model run instead: its cbst checkpoint, or a .pth/.params/.caffemodel/.safetensors weights "
                     "file with --model");
      cmd.add_option("--data", o->data, "the images to label with the model, KIND=PATH[:SPLIT]");
      model_only.push_back(cmd.add_option("--model", o->model, "the network; needed for weights that are not a cbst checkpoint")
                               ->check(CLI::IsMember(model_names())));
      model_only.push_back(cli::add_classes_option(cmd, o->classes));
      model_only.push_back(cli::add_allow_partial_flag(cmd, o->allow_partial));
      model_only.push_back(
          cmd.add_option("--split", o->split, "split of --data (default train; the same as --data KIND=PATH:SPLIT)"));
      model_only.push_back(cmd.add_option("--list", o->list_file, "list file restricting --data"));
      model_only.push_back(cmd.add_option("--scales", o->scales, "test scales, comma-separated (e.g. 0.5,0.75,1.0)")
                               ->delimiter(',')
                               ->check(cbst::cli::InRange(0.05, 8.0)));
      model_only.push_back(cmd.add_flag("--flip", o->flip, "also average the horizontally mirrored image"));
      model_only.push_back(cmd.add_option("--input-convention", o->input_convention,
                                          "input normalisation: caffe or torchvision (default: the weights')")
                               ->check(CLI::IsMember({"caffe", "torchvision"})));
      model_only.push_back(cmd.add_option("--previews", o->previews, "colourised previews of the first N label maps")
                               ->check(cbst::cli::InRange(int64_t(0), int64_t(1) << 40)));
      cmd.add_option("--method", o->method, "st (one global pool), cbst (one pool per class), or st-sp / cbst-sp "
                                            "(scores weighted by --prior)")
          ->check(CLI::IsMember({"st", "cbst", "st-sp", "cbst-sp"}));
      cmd.add_option("--prior", o->prior, "spatial prior from `cbst priors` (st-sp, cbst-sp)");
      cmd.add_option("--portion", o->portion, "portion p of each pool that is labelled")->check(cbst::cli::InRange(0.0, 1.0));
      cmd.add_option("--pool-stride", o->pool_stride,
                     "keep every K-th pixel in the threshold pools; 0: 1, or 4 with --pool-sampling authors")
          ->check(cbst::cli::InRange(0, 1 << 20));
      cmd.add_option("--pool-sampling", o->pool_sampling,
                     "which pixels enter the pools: pixel-index (index in the image a multiple of K) or authors "
                     "(every K-th pixel of each class per image, as the authors' code)")
          ->check(CLI::IsMember({"pixel-index", "authors"}));
      cmd.add_option("--device", o->device, "cpu, cuda or cuda:N");
      cmd.add_option("--out", o->out, "output: a folder for a model run, a .safetensors file for --probs")->required();
      cmd.callback([o, probs_only, model_only] {
        o->probs_only_given.clear();
        o->model_only_given.clear();
        for (CLI::Option* opt : probs_only)
          if (opt->count() > 0) o->probs_only_given.push_back(opt->get_name());
        for (CLI::Option* opt : model_only)
          if (opt->count() > 0) o->model_only_given.push_back(opt->get_name());
        check_sources(*o);
        if (o->probs.empty()) run_from_model(*o);
        else run_from_probs(*o);
      });
    });

}  // namespace
