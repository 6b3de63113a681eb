#include "selftrain/predict.h"

#include <cmath>
#include <filesystem>

#include "data/label_map.h"
#include "data/transforms.h"
#include "selftrain/evaluate.h"

namespace cbst {

data::Image blend_overlay(const data::Image& image, const data::Image& colour, double alpha) {
  if (image.width != colour.width || image.height != colour.height || image.channels != 3 || colour.channels != 3)
    CBST_THROW("overlay: the image is ", image.width, "x", image.height, "x", image.channels, " but the colours are ",
               colour.width, "x", colour.height, "x", colour.channels);
  data::Image out = image;
  for (size_t i = 0; i < out.pixels.size(); ++i)
    out.pixels[i] = uint8_t(std::lround((1 - alpha) * image.pixels[i] + alpha * colour.pixels[i]));
  return out;
}

PredictSummary predict_dataset(SegmentationModel& model, const data::Dataset& dataset, const PredictOptions& o) {
  namespace fs = std::filesystem;
  if (!(o.input_scale > 0 && o.input_scale <= 8))
    CBST_THROW("--input-scale ", o.input_scale, " is outside (0, 8]");
  if (!(o.overlay_alpha >= 0 && o.overlay_alpha <= 1))
    CBST_THROW("--overlay-alpha ", o.overlay_alpha, " is outside [0, 1]");
  if (!(o.label_ids || o.train_ids || o.color || o.overlay))
    CBST_THROW("nothing to write: every output (labelIds, trainIds, color, overlay) is turned off");
  if (dataset.size() == 0) CBST_THROW("no images in ", dataset.describe());
  const data::ClassSpace space = data::class_space_for(int(model.num_classes()));
  const data::Normalization norm =
      data::Normalization::from_name(o.input_convention.empty() ? model.input_convention() : o.input_convention);
  const fs::path root(o.out);
  for (const auto& [on, name] : {std::pair{o.label_ids, "labelIds"}, std::pair{o.train_ids, "trainIds"},
                                 std::pair{o.color, "color"}, std::pair{o.overlay, "overlay"}}) {
    if (!on) continue;
    std::error_code ec;
    fs::create_directories(root / name, ec);
    if (ec) CBST_THROW("cannot create the output folder '", (root / name).string(), "': ", ec.message());
  }

  InferenceOptions inference = o.inference;
  for (double& s : inference.scales) s *= o.input_scale;
  model.to(o.device);
  const int64_t n = o.limit < 0 ? int64_t(dataset.size()) : std::min<int64_t>(o.limit, int64_t(dataset.size()));
  PredictSummary summary;
  summary.class_pixels.assign(size_t(model.num_classes()), 0);
  for (int64_t k = 0; k < n; ++k) {
    const data::Sample& sample = dataset.sample(size_t(k));
    const data::Image image = dataset.read_image(size_t(k));
    inference.out_height = image.height;
    inference.out_width = image.width;
    Tensor x = Tensor::empty({1, 3, image.height, image.width});
    data::normalize(x.data<float>(), image, norm);
    if (!o.device.is_cpu()) x = x.to(o.device);
    const Tensor predicted = predict_labels(model, x, inference).to(Device::cpu());
    const data::Labels ids{.width = image.width, .height = image.height, .ids = predicted.to_vector<uint8_t>()};
    for (uint8_t c : ids.ids)
      if (c < summary.class_pixels.size()) ++summary.class_pixels[c];
    if (o.label_ids) data::write_png_grey((root / "labelIds" / (sample.stem + ".png")).string(),
                                          class_ids_to_label_ids(ids, space));
    if (o.train_ids) data::write_png_grey((root / "trainIds" / (sample.stem + ".png")).string(), ids);
    if (o.color || o.overlay) {
      const data::Image colour = data::colorize(ids, space);
      if (o.color) data::write_png((root / "color" / (sample.stem + "_color.png")).string(), colour);
      if (o.overlay)
        data::write_png((root / "overlay" / (sample.stem + "_overlay.png")).string(),
                        blend_overlay(image, colour, o.overlay_alpha));
    }
    ++summary.images;
    if (o.progress) o.progress(k + 1, n);
  }
  return summary;
}

}  // namespace cbst
