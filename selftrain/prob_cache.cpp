#include "selftrain/prob_cache.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "selftrain/prob_cache_math.h"

namespace cbst {

#if CBST_WITH_CUDA
void float_to_half_cuda(uint16_t* dst, const float* src, int64_t n);
void half_to_float_cuda(float* dst, const uint16_t* src, int64_t n);
#endif

void float_to_half(uint16_t* dst, const float* src, int64_t n, Device device) {
  if (device.is_cuda()) {
#if CBST_WITH_CUDA
    cuda_op_begin(device);
    float_to_half_cuda(dst, src, n);
    cuda_op_end("float_to_half");
    return;
#else
    throw_no_cuda_build("float_to_half");
#endif
  }
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

void half_to_float(float* dst, const uint16_t* src, int64_t n, Device device) {
  if (device.is_cuda()) {
#if CBST_WITH_CUDA
    cuda_op_begin(device);
    half_to_float_cuda(dst, src, n);
    cuda_op_end("half_to_float");
    return;
#else
    throw_no_cuda_build("half_to_float");
#endif
  }
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

ProbCacheOptions prob_cache_from_name(const std::string& memory, const std::string& precision,
                                      Device compute_device) {
  ProbCacheOptions o;
  CBST_CHECK(memory == "host" || memory == "device", "--prob-cache '", memory,
             "': expected host or device");
  CBST_CHECK(precision == "f32" || precision == "f16", "--prob-cache-precision '", precision,
             "': expected f32 or f16");
  o.device = memory == "host" ? Device::cpu() : compute_device;
  o.half = precision == "f16";
  return o;
}

void ProbabilityCache::add(const Tensor& probs) {
  NoGradGuard guard;
  CBST_CHECK(probs.dtype() == DType::f32 && probs.dim() == 4 && probs.size(0) == 1,
             "probability cache: expected f32 (1, C, h, w), got ", probs.str());
  if (entries_.empty()) shape_ = probs.shape();
  CBST_CHECK(probs.shape() == shape_, "probability cache: entry ", shape_str(probs.shape()),
             " differs from the first entry ", shape_str(shape_));
  const Tensor src = probs.contiguous().to(options_.device);
  if (!options_.half) {
    entries_.push_back(src.same(probs) ? src.clone() : src);
    return;
  }
  Tensor bits = Tensor::empty({src.numel() * 2}, DType::u8, options_.device);
  float_to_half(static_cast<uint16_t*>(bits.raw_data()), src.data<float>(), src.numel(), options_.device);
  entries_.push_back(bits);
}

Tensor ProbabilityCache::assemble(Device device) const {
  NoGradGuard guard;
  CBST_CHECK(!entries_.empty(), "probability cache: nothing was added");
  Shape shape = shape_;
  shape[0] = int64_t(entries_.size());
  if (!options_.half) return concat(entries_, 0).to(device);
  const int64_t per = shape_numel(shape_);
  Tensor out = Tensor::empty(shape, DType::f32, options_.device);
  for (size_t i = 0; i < entries_.size(); ++i)
    half_to_float(out.data<float>() + int64_t(i) * per, static_cast<const uint16_t*>(entries_[i].raw_data()),
                  per, options_.device);
  return out.to(device);
}

size_t ProbabilityCache::bytes() const {
  size_t b = 0;
  for (const Tensor& e : entries_) b += e.nbytes();
  return b;
}

}  // namespace cbst
