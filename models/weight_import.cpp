#include "models/weight_import.h"

#include <algorithm>
#include <map>
#include <set>

#include "engine/autograd.h"
#include "models/fcn8s_vgg16.h"
#include "weights/load_weights.h"

namespace cbst {

namespace {

using weights::TensorMap;

bool has(const TensorMap& m, const std::string& n) { return m.contains(n); }

// ---- ResNet-38: MXNet names <-> ours

// "res4b3" / "bn4b3" → "b4_3"; "res2a" → "b2"; "bn7" → "bn7".
std::string mxnet_block_to_ours(const std::string& tok) {
  const size_t digit = tok.find_first_of("0123456789");
  if (digit == std::string::npos) return "";
  const std::string rest = tok.substr(digit);  // "4b3" or "2a"
  if (rest.size() == 2 && rest[1] == 'a') return std::string("b") + rest[0];
  if (rest.size() >= 3 && rest[1] == 'b') return std::string("b") + rest[0] + "_" + rest.substr(2);
  return "";
}

// Returns our name for an MXNet ResNet-38 key, "" when it has no place (linear1000).
std::string resnet38_from_mxnet(const std::string& key, int64_t num_classes) {
  std::string k = key;
  if (k.rfind("arg:", 0) == 0 || k.rfind("aux:", 0) == 0) k = k.substr(4);
  if (k == "conv1a_weight") return "conv1a.weight";
  if (k.rfind("conv6a_", 0) == 0) return "conv6a." + k.substr(7);
  const std::string lin = "linear" + std::to_string(num_classes) + "_";
  if (k.rfind(lin, 0) == 0) return "classifier." + k.substr(lin.size());
  static const std::map<std::string, std::string> bn_part = {
      {"gamma", "weight"}, {"beta", "bias"}, {"moving_mean", "running_mean"},
      {"moving_var", "running_var"}};
  auto split = [](const std::string& s) {
    std::vector<std::string> t;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i)
      if (i == s.size() || s[i] == '_') {
        t.push_back(s.substr(start, i - start));
        start = i + 1;
      }
    return t;
  };
  const std::vector<std::string> t = split(k);
  if (t.size() >= 2 && t[0] == "bn7") {
    const std::string part = k.substr(4);
    auto it = bn_part.find(part);
    return it == bn_part.end() ? "" : "bn7." + it->second;
  }
  if (t.size() < 3 || t[1].rfind("branch", 0) != 0) return "";
  const std::string block = mxnet_block_to_ours(t[0]);
  if (block.empty()) return "";
  const bool is_conv = t[0].rfind("res", 0) == 0;
  const std::string part = k.substr(t[0].size() + t[1].size() + 2);
  if (is_conv) return part == "weight" ? block + ".conv_" + t[1] + ".weight" : "";
  auto it = bn_part.find(part);
  return it == bn_part.end() ? "" : block + ".bn_" + t[1] + "." + it->second;
}

const char* kVggNames[] = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                           "conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3",
                           "conv5_1", "conv5_2", "conv5_3"};
const int kVggFeatureIndex[] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};

}  // namespace

std::string resnet38_mxnet_name(const std::string& ours, int64_t num_classes) {
  static const std::map<std::string, std::string> bn_part = {
      {"weight", "gamma"}, {"bias", "beta"}, {"running_mean", "moving_mean"},
      {"running_var", "moving_var"}};
  const size_t dot = ours.find('.');
  const std::string first = ours.substr(0, dot), rest = ours.substr(dot + 1);
  if (first == "conv1a") return "arg:conv1a_weight";
  if (first == "conv6a") return "arg:conv6a_" + rest;
  if (first == "classifier") return "arg:linear" + std::to_string(num_classes) + "_" + rest;
  auto prefix = [&](const std::string& part) -> std::string {
    return (part == "running_mean" || part == "running_var") ? "aux:" : "arg:";
  };
  if (first == "bn7") return prefix(rest) + "bn7_" + bn_part.at(rest);
  // "b4_3" → "4b3", "b2" → "2a"
  const std::string lvl = first.substr(1, 1);
  const std::string id = first.size() > 2 ? lvl + "b" + first.substr(3) : lvl + "a";
  const size_t dot2 = rest.find('.');
  const std::string layer = rest.substr(0, dot2), part = rest.substr(dot2 + 1);
  if (layer.rfind("conv_", 0) == 0) return "arg:res" + id + "_" + layer.substr(5) + "_weight";
  return prefix(part) + "bn" + id + "_" + layer.substr(3) + "_" + bn_part.at(part);
}

namespace {

// A state_dict saved from torch.nn.DataParallel or DistributedDataParallel names every tensor
// "module.<name>": the wrapped model's names behind the wrapper's prefix.
bool wrapped_in_data_parallel(const TensorMap& source) {
  return !source.empty() && std::all_of(source.begin(), source.end(),
                                        [](const auto& e) { return e.first.rfind("module.", 0) == 0; });
}

std::string first_component(const std::string& name) { return name.substr(0, name.find('.')); }

// Which FCN8s the file is and which the model is (models/fcn8s_vgg16.h): a note saying what is
// assumed, or an error when the file shows it is the other one. Only a trained FCN (one with
// score layers) has a variant; a VGG16 backbone fits both.
void check_fcn8s_variant(const TensorMap& source, const Fcn8sVgg16& model, WeightImport& r) {
  if (!source.contains("score_pool4.weight")) return;
  const bool staged = model.variant() == Fcn8sVariant::staged;
  if (source.contains("scale_pool4.weight") || source.contains("scale_pool3.weight")) {
    if (staged)
      throw Error("its scale_pool4/scale_pool3 layers mark the at-once FCN8s (voc-fcn8s-atonce), not the "
                  "staged one; use --model fcn8s-vgg16");
    r.notes.push_back("the file's scale_pool4/scale_pool3 layers mark the at-once FCN8s: fcn8s-vgg16 scales "
                      "pool4 by 0.01 and pool3 by 0.0001 itself");
    return;
  }
  if (r.layout == "caffe-vgg16") {
    // Caffe's at-once net keeps its fixed Scale layers in the caffemodel; without them the
    // file is the staged voc-fcn8s (or voc-fcn16s).
    if (!staged)
      throw Error("it has score layers but no scale_pool4/scale_pool3 layers: it is the staged FCN "
                  "(voc-fcn8s, voc-fcn16s), whose skips are not scaled; use --model fcn8s-vgg16-staged");
    r.notes.push_back("no scale_pool4/scale_pool3 layers: the staged FCN (voc-fcn8s), unscaled skips");
    return;
  }
  r.notes.push_back(staged ? "assuming pytorch-fcn's staged FCN8s (fcn8s_from_caffe.pth: unscaled skips), as "
                             "--model fcn8s-vgg16-staged says; its names are those of FCN8sAtOnce too: for "
                             "fcn8s-atonce_from_caffe.pth use --model fcn8s-vgg16"
                           : "assuming the at-once FCN8s (FCN8sAtOnce, fcn8s-atonce_from_caffe.pth: pool4 scaled "
                             "by 0.01, pool3 by 0.0001), as --model fcn8s-vgg16 says; its names are those of the "
                             "staged FCN8s too: for fcn8s_from_caffe.pth use --model fcn8s-vgg16-staged");
}

}  // namespace

WeightImport map_weights(const TensorMap& wrapped, const SegmentationModel& model) {
  WeightImport r;
  TensorMap unwrapped;
  const bool strip = wrapped_in_data_parallel(wrapped);
  if (strip) {
    for (const auto& [n, t] : wrapped) unwrapped.insert(n.substr(7), t);
    unwrapped.metadata = wrapped.metadata;
    unwrapped.format = wrapped.format;
    r.notes.push_back("removed the 'module.' prefix of DataParallel/DistributedDataParallel from all " +
                      std::to_string(wrapped.size()) + " names");
  }
  const TensorMap& source = strip ? unwrapped : wrapped;
  std::map<std::string, Shape> want;
  for (auto& [n, t] : model.named_parameters()) want[n] = t.shape();
  for (auto& [n, t] : model.named_buffers()) want[n] = t.shape();

  // Our name for each source name ("" = dropped), per layout.
  std::map<std::string, std::string> rename;
  const bool mxnet = std::any_of(source.begin(), source.end(), [](const auto& e) {
    return e.first.rfind("arg:", 0) == 0 || e.first.rfind("aux:", 0) == 0;
  });
  const auto* fcn8s = dynamic_cast<const Fcn8sVgg16*>(&model);
  if (fcn8s && has(source, "features.0.weight")) {
    // timm keeps torchvision's features and names the fully connected layers pre_logits.
    const bool timm = has(source, "pre_logits.fc1.weight");
    r.layout = timm ? "timm-vgg16" : "torchvision-vgg16";
    r.input_convention = "torchvision";
    for (int i = 0; i < 13; ++i)
      for (const char* p : {"weight", "bias"})
        rename["features." + std::to_string(kVggFeatureIndex[i]) + "." + p] = std::string(kVggNames[i]) + "." + p;
    for (const char* p : {"weight", "bias"}) {
      rename[std::string(timm ? "pre_logits.fc1." : "classifier.0.") + p] = std::string("fc6.") + p;
      rename[std::string(timm ? "pre_logits.fc2." : "classifier.3.") + p] = std::string("fc7.") + p;
    }
  } else if (model.name() == "resnet38" && mxnet) {
    r.layout = "mxnet-resnet38";
    r.input_convention = "torchvision";
    for (auto& [n, t] : source) rename[n] = resnet38_from_mxnet(n, model.num_classes());
  } else if (fcn8s && source.format == "caffemodel") {
    r.layout = "caffe-vgg16";
    r.input_convention = "caffe";
  } else if (fcn8s && source.metadata.count("input_convention") == 0 &&
             has(source, "conv1_1.weight")) {
    r.layout = "pytorch-fcn";
    r.input_convention = "caffe";
  } else if (model.name() == "resnet38" && source.metadata.count("input_convention") == 0 &&
             has(source, "b2.bn_branch2a.weight")) {
    r.layout = "psa-resnet38";
    r.input_convention = "torchvision";
  } else {
    r.layout = "cbst";
    auto it = source.metadata.find("input_convention");
    r.input_convention = it != source.metadata.end() ? it->second : model.input_convention();
  }
  for (auto& [n, t] : source)
    if (!rename.count(n)) rename[n] = want.count(n) ? n : "";
  // Our own checkpoints record their model; only other programs' FCNs leave the variant open.
  if (fcn8s && (r.layout == "pytorch-fcn" || r.layout == "caffe-vgg16")) check_fcn8s_variant(source, *fcn8s, r);

  std::vector<std::string> misshaped;
  std::set<std::string> covered;
  for (auto& [n, t] : source) {
    const std::string ours = rename[n];
    auto w = ours.empty() ? want.end() : want.find(ours);
    if (w == want.end()) {
      r.dropped.push_back(n);
      continue;
    }
    Tensor value = t;
    if (value.shape() != w->second) {
      // fc6/fc7 stored as matrices (torchvision, Caffe's InnerProduct) become convolutions.
      if (value.numel() == shape_numel(w->second) && (ours.rfind("fc6.", 0) == 0 || ours.rfind("fc7.", 0) == 0 ||
                                                      value.dim() != int64_t(w->second.size()))) {
        value = value.reshape(w->second);
      } else {
        misshaped.push_back(n + " -> " + ours + ": file " + shape_str(t.shape()) + ", model " + shape_str(w->second));
        continue;
      }
    }
    r.tensors.set(ours, value);
    covered.insert(ours);
  }
  if (!misshaped.empty()) {
    std::string msg = "weights do not fit " + model.name() + " (" + std::to_string(model.num_classes()) +
                      " classes), layout " + r.layout + "; mis-shaped tensors (" +
                      std::to_string(misshaped.size()) + "): ";
    for (size_t i = 0; i < misshaped.size(); ++i) msg += (i ? "; " : "") + misshaped[i];
    msg += "; hint: check --model and --classes";
    throw Error(msg);
  }
  std::sort(r.dropped.begin(), r.dropped.end());
  const std::vector<std::string> head = model.head_layers();
  for (auto& [n, s] : want)
    if (!covered.count(n) && n.find("num_batches_tracked") == std::string::npos) {
      r.not_covered.push_back(n);
      if (std::find(head.begin(), head.end(), first_component(n)) == head.end()) r.not_covered_trunk.push_back(n);
    }
  return r;
}

WeightImport import_weights(const TensorMap& source, SegmentationModel& model) {
  WeightImport r = map_weights(source, model);
  std::map<std::string, Tensor> state;
  for (auto& [n, t] : r.tensors) state[n] = t;
  model.load_state_dict(state, /*strict=*/false);
  return r;
}

namespace {

// "fc6.weight", "fc6.bias", "fc7.weight" → "fc6 (weight, bias), fc7 (weight)", at most
// `limit` layers and then how many more.
std::string layer_list(const std::vector<std::string>& names, size_t limit = 8) {
  std::vector<std::pair<std::string, std::string>> layers;  // layer, its tensors
  for (const std::string& n : names) {
    const size_t dot = n.rfind('.');
    const std::string layer = dot == std::string::npos ? n : n.substr(0, dot);
    const std::string part = dot == std::string::npos ? n : n.substr(dot + 1);
    if (layers.empty() || layers.back().first != layer) layers.push_back({layer, part});
    else layers.back().second += ", " + part;
  }
  std::string out;
  for (size_t i = 0; i < layers.size() && i < limit; ++i)
    out += (i ? ", " : "") + layers[i].first + " (" + layers[i].second + ")";
  if (layers.size() > limit) out += " and " + std::to_string(layers.size() - limit) + " more layers";
  return out;
}

std::string joined(const std::vector<std::string>& names, size_t limit = 6) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += " and " + std::to_string(names.size() - limit) + " more";
  return out;
}

}  // namespace

void check_import_complete(const WeightImport& r, const SegmentationModel& model, const std::string& path,
                    const ModelRequest& q) {
  const std::vector<std::string>& missing = q.inference ? r.not_covered : r.not_covered_trunk;
  if (missing.empty() || q.allow_partial) return;
  std::string msg = path + " (layout " + r.layout + ") leaves " + std::to_string(missing.size()) + " tensors of " +
                    model.name() + " uninitialised: " + layer_list(missing);
  if (q.inference && r.not_covered_trunk.empty())
    msg += ", its head: the predictions would be those of an untrained classifier";
  if (!r.dropped.empty()) msg += "; the file's tensors with no place in the model: " + joined(r.dropped);
  msg += q.inference ? "; use weights trained for this model, or pass --allow-partial to run it anyway"
                     : "; use a file that holds them (is --model right?), or pass --allow-partial to train them "
                       "from their random initialisation";
  throw Error(msg);
}

std::string checkpoint_model(const std::map<std::string, std::string>& metadata) {
  const auto model = metadata.find("model");
  return model != metadata.end() && metadata.count("num_classes") ? model->second : std::string();
}

int64_t classes_in_weights(const TensorMap& source, std::string* where) {
  auto found = [&](const std::string& what, int64_t n) {
    if (where) *where = what;
    return n;
  };
  auto meta = source.metadata.find("num_classes");
  if (meta != source.metadata.end() && source.metadata.count("model")) {
    const int64_t n = source.metadata_int("num_classes", 0);
    if (n > 0) return found("metadata (num_classes " + meta->second + ")", n);
  }
  for (const std::string prefix : {"", "module."})
    for (const char* name : {"score_fr.weight", "classifier.weight"}) {
      const std::string key = prefix + name;
      if (source.contains(key) && source.at(key).dim() >= 2)
        return found("classifier " + key + " " + shape_str(source.at(key).shape()), source.at(key).size(0));
    }
  // MXNet: the segmentation classifier is linear{C} (CBST's checkpoints); ImageNet's is linear1000.
  for (auto& [name, t] : source) {
    const std::string head = "arg:linear", tail = "_weight";
    if (name.rfind(head, 0) != 0 || name.size() <= head.size() + tail.size() ||
        name.compare(name.size() - tail.size(), tail.size(), tail) != 0)
      continue;
    const std::string digits = name.substr(head.size(), name.size() - head.size() - tail.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits == "1000") continue;
    return found("classifier " + name + " " + shape_str(t.shape()), std::stoll(digits));
  }
  return 0;
}

LoadedModel load_model(const std::string& path, const ModelRequest& q) {
  LoadedModel out;
  if (path.empty()) {
    const int64_t classes = q.num_classes > 0 ? q.num_classes : q.default_classes;
    out.model = create_model(q.model, {.num_classes = classes, .seed = q.seed});
    out.input_convention = out.model->input_convention();
    out.description = q.model + ", " + std::to_string(classes) + " classes, random initialisation (seed " +
                      std::to_string(q.seed) + ")";
    return out;
  }
  const TensorMap m = weights::load_weights(path);
  m.check_finite();
  std::string where;
  const int64_t file_classes = classes_in_weights(m, &where);
  if (q.num_classes > 0 && file_classes > 0 && q.num_classes != file_classes)
    CBST_THROW("--classes ", q.num_classes, " does not match ", path, ", whose ", where, " gives ", file_classes,
               " classes; drop --classes (the file's count is used) or use weights with ", q.num_classes,
               " classes");
  const int64_t classes = q.num_classes > 0 ? q.num_classes : file_classes > 0 ? file_classes : q.default_classes;

  if (const std::string recorded = checkpoint_model(m.metadata); !recorded.empty()) {
    // A cbst checkpoint: the model it records, loaded strictly.
    if (!q.model.empty() && q.model != recorded)
      CBST_THROW(path, " holds a ", recorded, " checkpoint, not ", q.model, "; pass --model ", recorded,
                 " (or leave --model out), or another checkpoint");
    out.model = create_model(recorded, {.num_classes = classes, .seed = q.seed, .initialize = false});
    std::map<std::string, Tensor> state;
    // Training checkpoints also hold the optimizer's state under "optimizer."; not the model's.
    for (auto& [n, t] : m)
      if (n.rfind("optimizer.", 0) != 0) state[n] = t;
    out.model->load_state_dict(state, true);
    if (m.metadata.count("dropout_seed"))
      out.model->dropout_generator().set_state(m.metadata_u64("dropout_seed", 0), 0);
    auto conv = m.metadata.find("input_convention");
    out.input_convention = conv != m.metadata.end() ? conv->second : out.model->input_convention();
    out.description = out.model->name() + ", " + std::to_string(classes) + " classes, from checkpoint " + path;
    return out;
  }
  if (q.model.empty()) {
    std::string names;
    for (const std::string& n : model_names()) names += (names.empty() ? "" : ", ") + n;
    CBST_THROW(path, " is not a cbst checkpoint (it records no model); name the network its weights are for ",
               "with --model (", names, ")");
  }
  out.model = create_model(q.model, {.num_classes = classes, .seed = q.seed});
  WeightImport r;
  try {
    r = import_weights(m, *out.model);
  } catch (const Error& e) {
    CBST_THROW(path, ": ", e.what());
  }
  if (r.tensors.empty())
    CBST_THROW(path, ": none of its ", m.size(), " tensors fits ", q.model, " (layout ", r.layout,
               "); check --model");
  check_import_complete(r, *out.model, path, q);
  out.input_convention = r.input_convention;
  out.description = q.model + ", " + std::to_string(classes) + " classes" +
                    (file_classes > 0 ? " (the file's)" : "") + ", from " + path + " (" + r.layout + ", " +
                    std::to_string(r.tensors.size()) + " tensors imported; " + std::to_string(r.not_covered.size()) +
                    " keep their initialisation" +
                    (r.not_covered_trunk.empty() ? "" : " (--allow-partial: " + layer_list(r.not_covered_trunk) + ")") +
                    "; input " + r.input_convention + ")";
  for (const std::string& note : r.notes) out.description += "; " + note;
  return out;
}

TensorMap model_checkpoint(const SegmentationModel& model, const std::string& input_convention) {
  TensorMap m;
  for (auto& [n, t] : model.state_dict()) m.set(n, t.detach().to(Device::cpu()));
  m.metadata["model"] = model.name();
  m.metadata["num_classes"] = std::to_string(model.num_classes());
  m.metadata["input_convention"] = input_convention;
  return m;
}

std::shared_ptr<SegmentationModel> load_model_checkpoint(const std::string& path,
                                                         const std::string& expected_model,
                                                         std::string* input_convention) {
  const TensorMap m = weights::load_checkpoint(path);
  const std::string recorded = checkpoint_model(m.metadata);
  CBST_CHECK(!recorded.empty(), path,
             ": not a cbst model checkpoint (no model/num_classes metadata); convert external "
             "weights with `cbst weights convert IN OUT.safetensors --model NAME`");
  CBST_CHECK(expected_model.empty() || expected_model == recorded, path, " holds a ",
             recorded, " checkpoint, not ", expected_model);
  auto model = create_model(recorded, {.num_classes = std::stoll(m.metadata.at("num_classes")),
                                         .seed = 0, .initialize = false});
  std::map<std::string, Tensor> state;
  // Training checkpoints also hold the optimizer's state under "optimizer."; not the model's.
  for (auto& [n, t] : m)
    if (n.rfind("optimizer.", 0) != 0) state[n] = t;
  model->load_state_dict(state, true);
  if (input_convention) {
    auto conv = m.metadata.find("input_convention");
    *input_convention = conv != m.metadata.end() ? conv->second : model->input_convention();
  }
  return model;
}

}  // namespace cbst
