// The regularisers of CRST (Zou et al., ICCV 2019, "Confidence Regularized Self-Training"),
// as the authors' PyTorch code applies them (yzou2/CRST @ f7e4df0, crst_seg.py; run scripts
// mrkld.sh and lrent.sh). CRST with no regulariser is CBST; the pseudo-label thresholds do
// not change.
//
// MRKLD, a model regulariser (`--regularizer mrkld`, reg_loss_calc, l. 824–865):
//   loss = Σ_{p valid} −log p_{p,y_p} / V  +  W · Σ_{p ∈ R} Σ_c (−log p_pc / C) / |R|
//   V = the batch's non-ignored pixels (source and target); R = the non-ignored pixels of the
//   batch's *target* samples (the source's regulariser weight, --mr-weight-src, is 0 by
//   default, l. 83). The second term is KL(uniform ‖ p) up to the constant −log C, i.e. the
//   soft cross-entropy against uniform targets 1/C on R; it is 0 when R is empty (l. 860).
//   W: the authors' mrkld.sh passes --mr-weight-kld 0.1, and their code applies it twice,
//   once as the target samples' reg_weight (l. 344–347) and once as mr_weight_kld (l. 861),
//   so the term's effective weight is 0.1² = 0.01. Our W is that effective weight; its
//   default is 0.01.
//
// LRENT, a label regulariser (`--regularizer lrent`, label_selection l. 674–695, loss
// reg_loss_calc_expand l. 867–907, loaders Soft*DataSet in deeplab/datasets.py):
//   soft pseudo-label  ŷ_c = (s_c / k_c)^{1/α} / Σ_c' (s_c' / k_c')^{1/α}
//   with s the selection score (the probability p without a spatial prior, as the authors'
//   code, which has none; q·p for the -sp methods), k_c the class thresholds of the round
//   and α = W (lrent.sh: --lr-weight-ent 0.25, the default). The hard label is argmax ŷ; a
//   pixel is dropped (ignore) where
//     Σ_c [−ŷ_c log(s_c + 1e−32) + α ŷ_c log(ŷ_c + 1e−32)]  ≥  Σ_c −ŷ_c log(k_c + 1e−32),
//   which, the ε's aside, is Σ_c (s_c / k_c)^{1/α} ≤ 1 (every pixel hard CBST keeps, and
//   more). Training: soft cross-entropy against ŷ on the kept target pixels and against
//   one-hot labels on the source (SoftSrcSTDataSet), normalised by all pixels with a target.
//   Where the authors resize the stored ŷ maps bilinearly with the image's random scale and
//   renormalise, we take ŷ of the label pixel the augmented hard label comes from (nearest
//   neighbour, as the labels), computed from the round's cached probabilities.
//
// MRENT and the L2 regularisers of the paper are not implemented: MRENT's target depends on
// the prediction itself, so it is not a soft cross-entropy against fixed targets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/tensor.h"
#include "selftrain/pseudo_labels.h"

namespace cbst {

enum class Regularizer : uint8_t { none, mrkld, lrent };
Regularizer regularizer_from_name(const std::string& name);  // "none", "mrkld", "lrent"
const char* regularizer_name(Regularizer r);
// MRKLD 0.01 (the authors' effective 0.1²), LRENT α = 0.25, none 0.
double default_reg_weight(Regularizer r);

// The MRKLD loss above. logits: (N, C, H, W); labels: u8 (N, H, W), 255 = ignore;
// regularized[n]: whether sample n is a target sample; class_weights as softmax_cross_entropy.
Tensor mrkld_loss(const Tensor& logits, const Tensor& labels, const std::vector<bool>& regularized,
                  double weight, const Tensor& class_weights = Tensor());

// ŷ of one pixel (double, `classes` entries) from its scores s and the thresholds k; returns
// whether the authors' rule keeps the pixel. A pixel whose scores are all 0 is dropped.
bool lrent_soft_label(double* soft, const float* scores, const float* thresholds, int64_t classes,
                      double alpha);

// LRENT's hard pseudo-labels: u8 (N, H, W) on the CPU, argmax ŷ where kept, else 255.
// probs, spatial_prior and thresholds as for pseudo_labels (any device).
Tensor lrent_pseudo_labels(const Tensor& probs, const Tensor& spatial_prior,
                           const Tensor& thresholds, double alpha, LabelSize label_size);

// The soft targets of a training batch: one-hot of the batch's labels for the samples below
// `target_offset` (the source part) and ŷ for the target samples (target image index =
// dataset index − target_offset), zero where the batch's label is 255. Holds the round's
// probabilities (N_t, C, h, w) on the CPU.
class LrentTargets {
 public:
  LrentTargets(const Tensor& probs, const Tensor& spatial_prior, const Tensor& thresholds,
               double alpha, LabelSize label_size);
  // f32 (N, C, H, W) on `device`.
  Tensor build(const data::Batch& batch, int64_t target_offset, Device device) const;

 private:
  Tensor probs_, prior_;
  std::vector<float> thresholds_;
  double alpha_;
  LabelSize size_;
};

}  // namespace cbst
