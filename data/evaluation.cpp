// Confusion matrix and the metrics derived from it.
#include "data/evaluation.h"

#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/evaluation_kernels.h"
#include "engine/check.h"

namespace cbst::data {

ConfusionMatrix::ConfusionMatrix(int num_classes) : c_(num_classes) {
  CBST_CHECK(num_classes > 0 && num_classes < 255, "ConfusionMatrix: ", num_classes,
             " classes; must be 1..254 (255 is the ignore label)");
  counts_.assign(size_t(c_) * (c_ + 1), 0);
}

void ConfusionMatrix::add(const uint8_t* gt, const uint8_t* pred, int64_t n) {
  confusion_matrix_accumulate_cpu(counts_.data(), gt, pred, n, c_);
}

void ConfusionMatrix::add(const Labels& gt, const Labels& pred) {
  CBST_CHECK(gt.width == pred.width && gt.height == pred.height, "confusion matrix: ground truth is ",
             gt.width, "x", gt.height, " but prediction is ", pred.width, "x", pred.height);
  add(gt.ids.data(), pred.ids.data(), int64_t(gt.ids.size()));
}

void ConfusionMatrix::add(const Tensor& gt, const Tensor& pred) {
  CBST_CHECK(gt.dtype() == DType::u8 && pred.dtype() == DType::u8,
             "confusion matrix: labels must be u8 tensors, got ", gt.str(), " and ", pred.str());
  CBST_CHECK(gt.shape() == pred.shape(), "confusion matrix: ground truth ", shape_str(gt.shape()),
             " and prediction ", shape_str(pred.shape()), " differ in shape");
  CBST_CHECK(gt.device() == pred.device(), "confusion matrix: ground truth on ", gt.device().str(),
             " but prediction on ", pred.device().str(), "; move both with .to(device)");
  const Tensor g = gt.contiguous(), p = pred.contiguous();
  if (g.device().is_cpu()) {
    add(g.data<uint8_t>(), p.data<uint8_t>(), g.numel());
    return;
  }
#if CBST_WITH_CUDA
  std::vector<int64_t> partial(counts_.size(), 0);
  confusion_matrix_accumulate_cuda(partial.data(), g.data<uint8_t>(), p.data<uint8_t>(), g.numel(),
                                   c_, g.device().index);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += partial[i];
#else
  CBST_THROW("confusion matrix: tensors are on ", g.device().str(),
             " but this build has no CUDA backend; move them with .to(Device::cpu())");
#endif
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  CBST_CHECK(other.c_ == c_, "confusion matrix: cannot merge ", other.c_, " classes into ", c_);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

void ConfusionMatrix::reset() { std::fill(counts_.begin(), counts_.end(), 0); }

int64_t ConfusionMatrix::ground_truth_total(int c) const {
  int64_t s = 0;
  for (int p = 0; p <= c_; ++p) s += at(c, p);
  return s;
}

int64_t ConfusionMatrix::predicted_total(int c) const {
  int64_t s = 0;
  for (int g = 0; g < c_; ++g) s += at(g, c);
  return s;
}

int64_t ConfusionMatrix::valid_pixels() const {
  int64_t s = 0;
  for (int64_t v : counts_) s += v;
  return s;
}

EvalResult compute_metrics(const ConfusionMatrix& cm, const Protocol& protocol, int64_t images) {
  const auto& table = class_table(protocol.space);
  CBST_CHECK(cm.num_classes() == int(table.size()), "protocol ", protocol.name, " needs a ",
             table.size(), "-class confusion matrix, got ", cm.num_classes());
  EvalResult r;
  r.protocol = protocol.name;
  r.images = images;
  r.valid_pixels = cm.valid_pixels();
  int64_t correct = 0;
  for (int c = 0; c < cm.num_classes(); ++c) correct += cm.at(c, c);
  r.pixel_accuracy = r.valid_pixels > 0 ? double(correct) / double(r.valid_pixels) : 0.0;
  for (int c : protocol.classes) {
    ClassScore s;
    s.name = table[c].name;
    const int64_t tp = cm.at(c, c);
    s.ground_truth_pixels = cm.ground_truth_total(c);
    s.predicted_pixels = cm.predicted_total(c);
    s.absent = s.ground_truth_pixels == 0;
    const int64_t uni = s.ground_truth_pixels + s.predicted_pixels - tp;
    s.iou = uni > 0 ? double(tp) / double(uni) : 0.0;
    s.accuracy = s.ground_truth_pixels > 0 ? double(tp) / double(s.ground_truth_pixels) : 0.0;
    r.miou += s.iou;
    r.mean_accuracy += s.accuracy;
    r.classes.push_back(s);
  }
  for (int g : protocol.classes) {
    std::vector<int64_t> row;
    int64_t shown = 0;
    for (int p : protocol.classes) shown += row.emplace_back(cm.at(g, p));
    row.push_back(cm.ground_truth_total(g) - shown);
    r.confusion.push_back(std::move(row));
  }
  if (!r.classes.empty()) {
    r.miou /= double(r.classes.size());
    r.mean_accuracy /= double(r.classes.size());
  }
  return r;
}

std::string format_table(const EvalResult& r) {
  std::ostringstream os;
  char line[160];
  std::snprintf(line, sizeof line, "protocol %s: %lld images, %lld valid pixels\n", r.protocol.c_str(),
                (long long)r.images, (long long)r.valid_pixels);
  os << line;
  os << "+----------------+--------+--------+\n"
     << "| class          |  IoU % |  Acc % |\n"
     << "+----------------+--------+--------+\n";
  bool any_absent = false;
  for (const ClassScore& c : r.classes) {
    std::snprintf(line, sizeof line, "| %-14s | %6.2f | %6.2f |%s\n", c.name.c_str(), 100 * c.iou,
                  100 * c.accuracy, c.absent ? " *" : "");
    os << line;
    any_absent |= c.absent;
  }
  os << "+----------------+--------+--------+\n";
  std::snprintf(line, sizeof line, "mIoU%s %.2f   pixel acc %.2f   mean acc %.2f\n", r.protocol.c_str(),
                100 * r.miou, 100 * r.pixel_accuracy, 100 * r.mean_accuracy);
  os << line;
  if (any_absent)
    os << "* absent from the ground truth: IoU counted as 0 in the mean (as the reference code does)\n";
  return os.str();
}

Json to_json(const EvalResult& r) {
  Json classes = Json::array();
  for (const ClassScore& c : r.classes)
    classes.push_back({{"name", c.name}, {"iou", c.iou}, {"accuracy", c.accuracy},
                       {"ground_truth_pixels", c.ground_truth_pixels}, {"predicted_pixels", c.predicted_pixels},
                       {"absent", c.absent}});
  return {{"protocol", r.protocol}, {"images", r.images}, {"valid_pixels", r.valid_pixels}, {"miou", r.miou},
          {"pixel_accuracy", r.pixel_accuracy}, {"mean_accuracy", r.mean_accuracy}, {"classes", classes},
          {"confusion_matrix", r.confusion}};
}

}  // namespace cbst::data

namespace cbst::data {

void confusion_matrix_accumulate_cpu(int64_t* counts, const uint8_t* gt, const uint8_t* pred,
                                     int64_t n, int num_classes) {
  const int stride = num_classes + 1;
  for (int64_t i = 0; i < n; ++i) {
    const int g = gt[i];
    if (g >= num_classes) continue;
    const int p = pred[i] < num_classes ? pred[i] : num_classes;
    ++counts[g * stride + p];
  }
}

}  // namespace cbst::data
