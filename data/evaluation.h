// Semantic-segmentation evaluation: one confusion matrix accumulated over the whole dataset,
// then per-class IoU = TP / (TP + FP + FN), mIoU over the protocol's classes, pixel accuracy
// and mean class accuracy.
//
// Conventions (those of CBST's evaluate.py and cityscapesScripts):
// - a pixel counts only when its ground truth is a class of the space (0..C-1); everything
//   else (255 and any other value) is ignored, including the prediction there;
// - a prediction outside 0..C-1 on a valid pixel is a miss (FN of the GT class, FP of none);
// - a class absent from the ground truth of the whole dataset gets IoU 0 and accuracy 0,
//   still counts in the means, and is flagged (`absent`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/label_map.h"
#include "engine/json.h"
#include "engine/tensor.h"

namespace cbst::data {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes);

  int num_classes() const { return c_; }
  // counts[g * (C + 1) + p]: ground truth g (0..C-1), prediction p (0..C-1, or C = "no class").
  const std::vector<int64_t>& counts() const { return counts_; }
  int64_t at(int gt, int pred) const { return counts_[size_t(gt) * (c_ + 1) + pred]; }

  void add(const uint8_t* gt, const uint8_t* pred, int64_t n);  // host arrays
  void add(const Labels& gt, const Labels& pred);                // sizes must match
  // u8 tensors of equal shape on the CPU or a CUDA device (a CUDA kernel counts there).
  void add(const Tensor& gt, const Tensor& pred);
  void merge(const ConfusionMatrix& other);
  void reset();

  int64_t ground_truth_total(int c) const;  // TP + FN
  int64_t predicted_total(int c) const;     // TP + FP (valid-GT pixels only)
  int64_t valid_pixels() const;

 private:
  int c_;
  std::vector<int64_t> counts_;
};

struct ClassScore {
  std::string name;
  double iou = 0;       // fraction, 0..1
  double accuracy = 0;  // TP / GT
  int64_t ground_truth_pixels = 0;
  int64_t predicted_pixels = 0;
  bool absent = false;  // no ground-truth pixel in the dataset: IoU counted as 0
};

struct EvalResult {
  std::string protocol;  // "19", "16", "13", "nthu"
  std::vector<ClassScore> classes;  // the protocol's classes in the paper's order
  double miou = 0;
  double pixel_accuracy = 0;  // over all valid pixels of the space
  double mean_accuracy = 0;
  int64_t valid_pixels = 0;
  int64_t images = 0;
  // Pixel counts: confusion[g][p], ground truth `classes[g]` predicted as `classes[p]`; the
  // last column (p = classes.size()) counts predictions of no class of the protocol.
  std::vector<std::vector<int64_t>> confusion = {};
};

EvalResult compute_metrics(const ConfusionMatrix& cm, const Protocol& protocol, int64_t images = 0);

// A table in the paper's class order (percent, 2 decimals), absent classes marked '*'.
std::string format_table(const EvalResult& result);
// {"protocol", "images", "valid_pixels", "miou", "pixel_accuracy", "mean_accuracy",
//  "classes": [{"name", "iou", "accuracy", "ground_truth_pixels", "predicted_pixels", "absent"}],
//  "confusion_matrix": confusion}
Json to_json(const EvalResult& result);

}  // namespace cbst::data
