// Internal: the confusion-matrix counting kernels behind ConfusionMatrix::add.
// counts has C * (C + 1) entries: row = ground truth 0..C-1, column = prediction 0..C-1 or
// C for "no class" (any prediction >= C). Pixels whose ground truth is >= C are skipped.
#pragma once

#include <cstdint>

namespace cbst::data {

void confusion_matrix_accumulate_cpu(int64_t* counts, const uint8_t* gt, const uint8_t* pred,
                                     int64_t n, int num_classes);

// gt and pred are device pointers on `device`; counts is a host array that receives (not
// accumulates) this call's counts. Compiled only in CUDA builds (evaluation_cuda.cu).
void confusion_matrix_accumulate_cuda(int64_t* counts, const uint8_t* gt, const uint8_t* pred,
                                      int64_t n, int num_classes, int device);

}  // namespace cbst::data
