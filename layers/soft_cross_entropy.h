// Softmax cross-entropy against soft (probability) targets: the loss of CRST's label
// regulariser LRENT (soft pseudo-labels) and, with uniform targets, its model regulariser
// MRKLD (Zou et al., ICCV 2019; the authors' crst_seg.py, reg_loss_calc_expand).
//
//   logits x:  (N, C, H, W) or (N, C), f32 or f64
//   targets t: the same shape, dtype and device; a pixel whose targets sum to 0 is ignored
//
//   for every pixel p:  S_p = Σ_c t_pc,  lse_p = m_p + log Σ_c exp(x_pc − m_p)
//     ℓ_p = Σ_c t_pc (lse_p − x_pc)          (= −Σ_c t_pc log softmax(x_p)_c)
//   V    = #{p : S_p ≠ 0}                     (the authors' valid_num: label_sum != 0)
//   loss = Σ_p ℓ_p / V                        (0 when V = 0)
//   ∂loss/∂x_pc = (S_p softmax(x_p)_c − t_pc) / V
//
// Same semantics as torch.nn.functional.cross_entropy(x, t, reduction='sum') / V, i.e.
// torch's probability-target cross-entropy normalised by the pixels that carry a target (not
// by N·H·W as reduction='mean' would). With one-hot targets it equals softmax_cross_entropy
// with those labels. Not differentiable with respect to the targets. Backward saves the
// logits, the targets, lse_p and V.
//
// Reductions run in double in a fixed order on both devices (per-pixel buffers, a one-block
// tree reduction on the GPU, no float atomics), so the result is bit-reproducible.
#pragma once

#include "engine/tensor.h"

namespace cbst {

// Returns a 0-d tensor (the logits' dtype and device).
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& targets);

}  // namespace cbst
