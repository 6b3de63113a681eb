// Softmax cross-entropy with an ignore label and optional class weights (fused log-softmax
// + NLL), the training loss of every model here.
//
// Same semantics as torch.nn.functional.cross_entropy(logits, labels, weight=class_weights,
// ignore_index=ignore_index, reduction='mean'), with one deliberate difference: a batch whose
// pixels are all ignored gives loss 0 and zero gradients (torch gives NaN). This matches the
// reference's SoftmaxOutput(normalization='valid') whose normaliser is max(valid, 1).
//
//   logits x: (N, C, H, W) or (N, C), f32 or f64
//   labels y: (N, H, W) or (N),       u8, i32 or i64
//   class_weights w: (C), the logits' dtype and device; undefined = all ones
//
//   for every pixel p with y_p ≠ ignore_index:
//     lse_p  = m_p + log Σ_c exp(x_pc − m_p),  m_p = max_c x_pc   (numerically stable)
//     ℓ_p    = lse_p − x_{p,y_p}
//   loss   = Σ_p w_{y_p} ℓ_p / Σ_p w_{y_p}       (0 when no pixel counts)
//   ∂loss/∂x_pc = w_{y_p} (softmax(x_p)_c − [c = y_p]) / Σ_p w_{y_p}   (0 for ignored p)
//
// A label ≥ C (or < 0) that is not ignore_index is an error naming the value. Backward saves
// the logits, the labels, lse_p per pixel and the weight sum (no extra C-sized tensor). Not
// differentiable with respect to the labels or the class weights (as torch).
//
// Reductions run in double in a fixed order on both devices (the CUDA kernels use a
// per-pixel buffer and one-block tree reduction, never float atomics), so the result is
// bit-reproducible. The CUDA forward synchronises once to read the label-range check.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace cbst {

struct CrossEntropyOptions {
  int64_t ignore_index = 255;
  Tensor class_weights = Tensor();  // (C) or undefined
};

// Returns a 0-d tensor (the logits' dtype and device).
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels,
                             const CrossEntropyOptions& options = {});

}  // namespace cbst
