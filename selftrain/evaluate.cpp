#include "selftrain/evaluate.h"

#include <filesystem>
#include <optional>
#include <vector>

#include "data/transforms.h"

namespace cbst {

namespace {

// The encoding in which a model's class ids are stored, for mapping them to another space.
data::LabelEncoding encoding_of(data::ClassSpace space) {
  switch (space) {
    case data::ClassSpace::cityscapes19: return data::LabelEncoding::train_ids19;
    case data::ClassSpace::synthia16: return data::LabelEncoding::train_ids16;
    case data::ClassSpace::nthu13: break;
  }
  CBST_THROW("a 13-class (NTHU) model can only be evaluated with protocol nthu");
}

// The map from the model's class ids to the protocol's; empty when they are the same space.
std::optional<data::LabelMap> prediction_map(data::ClassSpace model_space, const data::Protocol& protocol) {
  if (model_space == protocol.space) return std::nullopt;
  return data::LabelMap(encoding_of(model_space), protocol.space, data::LabelRole::prediction);
}

// f32 (1, 3, H, W) on `device`, normalised as the model's weights expect.
Tensor image_tensor(const data::Image& image, const data::Normalization& norm, Device device) {
  Tensor x = Tensor::empty({1, 3, image.height, image.width});
  data::normalize(x.data<float>(), image, norm);
  return device.is_cpu() ? x : x.to(device);
}

void save_prediction(const EvaluateOptions& o, const std::string& stem, const data::Labels& ids,
                     data::ClassSpace space) {
  namespace fs = std::filesystem;
  const fs::path root(o.save_predictions);
  const fs::path id_dir = root / (o.save_train_ids ? "trainIds" : "labelIds");
  const fs::path color_dir = root / "color";
  fs::create_directories(id_dir);
  fs::create_directories(color_dir);
  data::write_png_grey((id_dir / (stem + ".png")).string(),
                       o.save_train_ids ? ids : class_ids_to_label_ids(ids, space));
  data::write_png((color_dir / (stem + "_color.png")).string(), data::colorize(ids, space));
}

}  // namespace

data::Labels class_ids_to_label_ids(const data::Labels& ids, data::ClassSpace space) {
  const auto& table = data::class_table(space);
  data::Labels out = data::Labels::blank(ids.width, ids.height, 0);
  for (size_t i = 0; i < ids.ids.size(); ++i)
    if (ids.ids[i] < table.size()) out.ids[i] = uint8_t(table[ids.ids[i]].label_id);
  return out;
}

data::EvalResult evaluate_model(SegmentationModel& model, const data::Dataset& dataset,
                                const EvaluateOptions& options) {
  const data::Protocol& protocol = options.protocol;
  const data::ClassSpace model_space = data::class_space_for(int(model.num_classes()));
  const std::optional<data::LabelMap> pred_map = prediction_map(model_space, protocol);
  const data::LabelMap gt_map = dataset.label_map(protocol.space);
  const data::Normalization norm = data::Normalization::from_name(
      options.input_convention.empty() ? model.input_convention() : options.input_convention);
  CBST_CHECK(options.input_scale > 0, "input scale must be positive, got ", options.input_scale);

  std::vector<size_t> labelled;
  for (size_t i = 0; i < dataset.size(); ++i)
    if (!dataset.sample(i).label.empty()) labelled.push_back(i);
  if (labelled.empty())
    CBST_THROW("no ground truth to evaluate against in ", dataset.describe(), "; use a labelled split (e.g. val)");

  InferenceOptions inference = options.inference;
  for (double& s : inference.scales) s *= options.input_scale;
  // Only when it is elsewhere: Module::to replaces the parameters even on their own device,
  // and a training run evaluating between epochs would go on stepping an optimizer over
  // tensors the model no longer uses (every step after the first evaluation lost).
  const std::vector<Tensor> params = model.parameters();
  if (params.empty() || params.front().device() != options.device) model.to(options.device);

  data::ConfusionMatrix cm(data::num_classes(protocol.space));
  for (size_t k = 0; k < labelled.size(); ++k) {
    const data::Sample& sample = dataset.sample(labelled[k]);
    const data::LoadedSample loaded = dataset.load(labelled[k], gt_map);
    const int64_t h = loaded.labels.height, w = loaded.labels.width;
    inference.out_height = h;
    inference.out_width = w;
    const Tensor predicted =
        predict_labels(model, image_tensor(loaded.image, norm, options.device), inference).reshape({h, w});

    const bool save = !options.save_predictions.empty() && (options.save_limit < 0 || int64_t(k) < options.save_limit);
    if (!pred_map && !save) {
      // Same class space: count on the prediction's device (a CUDA kernel for CUDA tensors).
      cm.add(Tensor::from_vector<uint8_t>(loaded.labels.ids, {h, w}, options.device), predicted);
    } else {
      data::Labels ids{.width = int(w), .height = int(h), .ids = predicted.to(Device::cpu()).to_vector<uint8_t>()};
      if (save) save_prediction(options, sample.stem, ids, model_space);
      if (pred_map) {
        data::RawLabels raw{.width = ids.width, .height = ids.height, .values = {ids.ids.begin(), ids.ids.end()}};
        cm.add(loaded.labels, pred_map->apply(raw));
      } else {
        cm.add(loaded.labels, ids);
      }
    }
    if (options.progress) options.progress(int64_t(k + 1), int64_t(labelled.size()));
  }
  return data::compute_metrics(cm, protocol, int64_t(labelled.size()));
}

}  // namespace cbst
