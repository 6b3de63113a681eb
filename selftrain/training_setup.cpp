#include "selftrain/training_setup.h"

#include "data/transforms.h"
#include "engine/dist.h"
#include "engine/format.h"
#include "layers/batch_norm2d.h"

namespace cbst {

std::string precision_note(Precision p) {
  return p == Precision::bf16 ? ", bf16 mixed precision" : "";
}

int64_t default_num_classes(const data::Dataset& dataset) { return dataset.kind() == "synthia" ? 16 : 19; }

std::pair<std::string, std::string> split_eval_spec(const std::string& spec, const std::string& default_split) {
  const size_t eq = spec.find('=');
  const size_t colon = spec.rfind(':');
  if (eq != std::string::npos && colon != std::string::npos && colon > eq) {
    const std::string split = spec.substr(colon + 1);
    // A split name has no path separators; otherwise the colon belongs to the path.
    if (!split.empty() && split.find('/') == std::string::npos) return {spec.substr(0, colon), split};
  }
  return {spec, default_split};
}

data::LoaderOptions loader_options(const TrainingOptions& o, data::ClassSpace space,
                                   const std::string& input_convention, uint64_t seed) {
  data::LoaderOptions l;
  l.batch_size = int(o.batch);
  l.workers = o.workers;
  l.shuffle = true;
  l.drop_last = true;
  l.augment = true;
  l.seed = seed;
  l.classes = space;
  l.augment_params = {.resize_long_side = int(o.resize_long_side), .min_scale = o.min_scale,
                      .max_scale = o.max_scale, .crop_width = int(o.crop_width),
                      .crop_height = int(o.crop_height), .flip = o.flip};
  l.color_jitter = o.color_jitter;
  l.blur = o.blur;
  l.normalization = data::Normalization::from_name(input_convention);
  l.device = o.device;
  l.shard_index = dist::world().rank();
  l.shard_count = dist::world().size();
  return l;
}

int64_t global_batch(const TrainingOptions& o) { return o.batch * dist::world().size(); }

void require_full_batch(int64_t images, const TrainingOptions& o, const std::string& what) {
  const int ranks = dist::world().size();
  const int64_t global = global_batch(o);
  if (images >= global) return;
  const std::string batch = ranks == 1 ? "one batch of " + std::to_string(global)
                                       : "one global batch of " + std::to_string(global) + " (--batch " +
                                             std::to_string(o.batch) + " × " + std::to_string(ranks) + " ranks)";
  CBST_THROW(what, " has ", count_of(images, "image"), ", fewer than ", batch,
             "; each epoch drops its last partial batch, so nothing would be trained. Use --batch ",
             std::max<int64_t>(1, images / ranks), " or more images");
}

void prepare_data_parallel(SegmentationModel& model) {
  dist::Communicator& comm = dist::world();
  if (comm.size() == 1) return;
  sync_batch_norm(model, &comm);
  model.dropout_generator().set_batch_slice(comm.rank(), comm.size());
  std::vector<Tensor> tensors;
  for (auto& [name, t] : model.named_parameters()) tensors.push_back(t);
  dist::broadcast_tensors(comm, tensors);
  broadcast_buffers(model);
}

void broadcast_buffers(SegmentationModel& model) {
  dist::Communicator& comm = dist::world();
  if (comm.size() == 1) return;
  std::vector<Tensor> buffers;
  for (auto& [name, t] : model.named_buffers()) buffers.push_back(t);
  dist::broadcast_tensors(comm, buffers);
}

Sgd make_optimizer(const SegmentationModel& model, const TrainingOptions& o, double lr, int64_t poly_steps) {
  std::vector<ParamGroup> groups;
  for (const ParameterGroupSpec& g : model.parameter_groups())
    if (!g.parameters.empty())
      groups.push_back({.name = g.name, .params = g.parameters, .lr_mult = g.lr_mult, .decay_mult = g.weight_decay_mult});
  return Sgd(groups, {.lr = lr, .momentum = o.momentum, .weight_decay = o.weight_decay,
                      .max_grad_norm = o.max_grad_norm,
                      .schedule = poly_steps > 0 ? LrSchedule{.kind = LrSchedule::Kind::poly, .power = 0.9,
                                                              .max_iter = poly_steps, .warmup_iters = o.warmup_iters}
                                                 : LrSchedule{.warmup_iters = o.warmup_iters}});
}

data::LabelEncoding class_id_encoding(data::ClassSpace space) {
  switch (space) {
    case data::ClassSpace::cityscapes19: return data::LabelEncoding::train_ids19;
    case data::ClassSpace::synthia16: return data::LabelEncoding::train_ids16;
    default: CBST_THROW("self-training supports the 19- and 16-class spaces, not ", data::class_space_name(space));
  }
}

Tensor image_tensor(const data::Image& image, const std::string& input_convention, Device device) {
  Tensor t = Tensor::empty({1, 3, image.height, image.width});
  data::normalize(t.data<float>(), image, data::Normalization::from_name(input_convention));
  return t.to(device);
}

}  // namespace cbst
