// Direct f32 convolution for thin layers: internal to the CPU convolution (conv2d_cpu.cpp),
// which decides where it applies, for forward and (with the filters transposed and turned)
// for backward-data.
//
// For small-fcn's conv1_2 (16 → 16 channels at 96²) the im2col matrix is as long as the
// GEMM's work and twice the layer's input, written and read back per image (backward-data:
// written by the GEMM, zeroed first, and read back by col2im); the direct kernel reads a
// zero-padded copy of the image instead.
#pragma once

#include <cstdint>

namespace cbst::conv_detail {

// Stride-1 geometry on a zero-padded image: hp = h + 2·pad, wp = w + 2·pad.
struct DirectGeometry {
  int64_t ci, h, w, hp, wp;
  int64_t co, kh, kw;
  int64_t pad, dilation;
  int64_t ho, wo;
};

// Whether this CPU has the kernel (AVX2 and FMA) and CBST_CPU_CONV_DIRECT does not turn it
// off: any value that reads as the number 0 does ("0", "off"), except "avx2" (read at every
// call, so that tests can compare both paths).
bool direct_forward_available();

// Whether the kernel also takes its 512-bit blocks: the CPU has AVX-512F and
// CBST_CPU_CONV_DIRECT is not "avx2" (read at every call; the bits are the same either way).
bool direct_wide_kernel();

// Convolution forwards and backward-data passes (whole batches) that took the direct kernel
// in this process.
int64_t direct_forward_count();
int64_t direct_backward_count();

// The image x (ci, h, w) into xp (ci, hp, wp) with zeros around it.
void pad_image(float* xp, const float* x, const DirectGeometry& q);

// Output rows [oh0, oh1) of every filter: y (co, ho, wo) from the padded image and w
// (co, ci, kh, kw), as chains of fused multiply-adds in im2col's row order.
void direct_forward_rows(float* y, const float* xp, const float* w, const DirectGeometry& q, int64_t oh0,
                         int64_t oh1);

}  // namespace cbst::conv_detail
