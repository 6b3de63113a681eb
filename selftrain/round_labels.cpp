#include "selftrain/round_labels.h"

#include <filesystem>

#include "data/image.h"
#include "engine/autograd.h"
#include "engine/dist.h"
#include "engine/ops.h"
#include "selftrain/distributed_thresholds.h"
#include "selftrain/training_setup.h"

namespace cbst {

RoundLabels generate_round_labels(SegmentationModel& model, const data::Dataset& target,
                                  const Tensor& prior, const RoundLabelOptions& o, RunDir& run,
                                  int64_t round) {
  const std::filesystem::path dir = std::filesystem::path(run.path()) / "rounds" / std::to_string(round) / "pseudo";
  return label_dataset(model, target, prior, o, {.dir = dir.string(), .name = "round " + std::to_string(round), .run = &run});
}

RoundLabels label_dataset(SegmentationModel& model, const data::Dataset& target, const Tensor& prior,
                          const RoundLabelOptions& o, const LabelOutput& out) {
  NoGradGuard no_grad;
  const int64_t n = int64_t(target.size());
  CBST_CHECK(n > 0, "the target set is empty: ", target.describe());
  const int64_t classes = model.num_classes();
  // Data-parallel: this rank predicts and labels images [first, last), its contiguous share.
  dist::Communicator& comm = dist::world();
  CBST_CHECK(n >= comm.size(), "the target set has ", n, " images, fewer than the ", comm.size(),
             " processes that share its pseudo-labelling; use fewer processes");
  const int64_t first = n * comm.rank() / comm.size(), last = n * (comm.rank() + 1) / comm.size();

  // Pass over the target: probabilities at network resolution, cached on the host.
  ProbabilityCache cache(o.cache);
  int64_t height = 0, width = 0;
  Progress progress(out.name + " predict", last - first, out.run);
  for (int64_t i = first; i < last; ++i) {
    const data::Image image = target.read_image(size_t(i));
    if (i == first) {
      height = image.height;
      width = image.width;
      int64_t size[2] = {height, width};
      comm.broadcast(size, int64_t(sizeof size), 0);
      CBST_CHECK(size[0] == height && size[1] == width, "pseudo-labelling needs target images of one size: ",
                 target.sample(size_t(i)).image, " is ", width, "x", height, " but the first image is ", size[1],
                 "x", size[0], "; resize the target images or use a list of equal-sized ones");
    }
    CBST_CHECK(image.height == height && image.width == width, "pseudo-labelling caches one tensor for the ",
               "whole target set, so its images must share a size: ", target.sample(size_t(i)).image, " is ",
               image.width, "x", image.height, " but the first image is ", width, "x", height,
               "; resize the target images or use a list of equal-sized ones");
    cache.add(predict_probabilities(model, image_tensor(image, o.input_convention, o.device), o.inference));
    progress.update(i + 1 - first);
  }
  progress.finish("(probability cache " + std::to_string(cache.bytes() >> 20) + " MiB, " +
                  (o.cache.half ? "f16" : "f32") + " in " + o.cache.device.str() + " memory)");
  const Tensor all = cache.assemble(o.device);

  const LabelSize size{height, width};
  const ThresholdParams params{.policy = o.policy, .portion = o.portion, .pool_stride = o.pool_stride,
                               .sampling = o.sampling, .label_size = size};
  // Several ranks: the pools of all shares merged exactly, the same thresholds as one process.
  const ClassThresholds thr = comm.size() > 1 ? distributed_class_thresholds(all, prior, params, comm)
                                              : class_thresholds(all, prior, params);
  const Tensor labels = o.lrent_alpha > 0
                            ? lrent_pseudo_labels(all, prior, thr.thresholds, o.lrent_alpha, size)
                            : pseudo_labels(all, prior, thr.thresholds, {.label_size = size}).labels.to(Device::cpu());

  RoundLabels r{.dataset = data::Dataset("pseudo", out.dir, out.name, class_id_encoding(o.space), {})};
  const std::vector<float> t = thr.thresholds.to_vector<float>();
  r.thresholds.assign(t.begin(), t.end());
  r.pool_sizes = thr.pool_sizes.to_vector<int64_t>();
  r.labelled.assign(size_t(classes), 0);
  r.checked.assign(size_t(classes), 0);
  r.correct.assign(size_t(classes), 0);
  r.pixels = n * height * width;
  r.has_ground_truth = target.all_labelled();
  const data::LabelMap gt_map = target.label_map(o.space);

  // Each rank writes the label maps of its share (into the shared run folder) and counts them.
  const uint8_t* lab = labels.data<uint8_t>();
  const std::filesystem::path dir(out.dir);
  std::error_code ec;  // several ranks may create it at once: what counts is that it is there
  std::filesystem::create_directories(dir, ec);
  CBST_CHECK(std::filesystem::is_directory(dir), "cannot create ", out.dir, ": ", ec.message(),
             "; choose a writable folder");
  for (int64_t i = first; i < last; ++i) {
    const data::Sample& s = target.sample(size_t(i));
    const uint8_t* own = lab + (i - first) * height * width;
    data::Labels map{.width = int(width), .height = int(height),
                     .ids = std::vector<uint8_t>(own, own + height * width)};
    for (uint8_t id : map.ids)
      if (id != 255) ++r.labelled[id];
    if (r.has_ground_truth) {
      const data::Labels gt = gt_map.apply(target.read_raw_labels(size_t(i)));
      for (size_t k = 0; k < map.ids.size(); ++k) {
        if (map.ids[k] == 255) continue;
        if (gt.ids[k] != 255) {
          ++r.checked[map.ids[k]];
          r.correct[map.ids[k]] += map.ids[k] == gt.ids[k];
        }
        if (o.true_labels) map.ids[k] = gt.ids[k];  // after the counts, which describe the rule's own label
      }
    }
    data::write_png_grey((dir / (s.stem + ".png")).string(), map);
    if (i < o.previews) data::write_png((dir / (s.stem + "_color.png")).string(), data::colorize(map, o.space));
  }
  if (comm.size() > 1) {
    std::vector<int64_t> counts(r.labelled);
    counts.insert(counts.end(), r.checked.begin(), r.checked.end());
    counts.insert(counts.end(), r.correct.begin(), r.correct.end());
    comm.all_reduce_sum(counts.data(), int64_t(counts.size()));
    for (int64_t c = 0; c < classes; ++c) {
      r.labelled[size_t(c)] = counts[size_t(c)];
      r.checked[size_t(c)] = counts[size_t(classes + c)];
      r.correct[size_t(c)] = counts[size_t(2 * classes + c)];
    }
    comm.barrier();  // every share's files are written before any rank trains on them
  }
  std::vector<data::Sample> samples;
  for (int64_t i = 0; i < n; ++i) {
    const data::Sample& s = target.sample(size_t(i));
    if (i < o.previews) r.preview_stems.push_back(s.stem);
    samples.push_back({.image = s.image, .label = (dir / (s.stem + ".png")).string(), .stem = s.stem});
  }
  r.dataset = data::Dataset("pseudo", out.dir, out.name, class_id_encoding(o.space), std::move(samples));
  if (o.lrent_alpha > 0)  // training samples any target image: every rank holds all probabilities
    r.soft_targets = std::make_shared<const LrentTargets>(comm.size() > 1 ? all_gather_images(all, comm) : all, prior,
                                                          thr.thresholds, o.lrent_alpha, size);
  return r;
}

}  // namespace cbst
