// Batch normalisation on the GPU through cuDNN's legacy batch-norm calls (deprecated in
// cuDNN 9, still shipped; DESIGN.md §3 accepts them). Spatial mode, never the persistent
// variant (accuracy losses reported by PyTorch, overflow risk reported by Paddle).
// cuDNN computes the running variance with the unbiased estimate, as torch does.
#include "engine/cuda/context.h"
#include "layers/conv_backend.h"

namespace cbst::conv_detail {

namespace {

constexpr cudnnBatchNormMode_t kMode = CUDNN_BATCHNORM_SPATIAL;

cudnnDataType_t bn_dtype(DType t) {
  CBST_CHECK(t == DType::f32 || t == DType::f64, "cuDNN batch norm: unsupported dtype ",
             dtype_name(t));
  return t == DType::f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// x's descriptor and the derived (1, C, 1, 1) descriptor for γ, β and the statistics.
class BnDescs {
 public:
  explicit BnDescs(const Tensor& x) {
    CBST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_));
    CBST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&param_));
    CBST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NCHW, bn_dtype(x.dtype()),
                                                int(x.size(0)), int(x.size(1)), int(x.size(2)),
                                                int(x.size(3))));
    CBST_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(param_, x_, kMode));
  }
  ~BnDescs() {
    cudnnDestroyTensorDescriptor(x_);
    cudnnDestroyTensorDescriptor(param_);
  }
  BnDescs(const BnDescs&) = delete;
  BnDescs& operator=(const BnDescs&) = delete;
  cudnnTensorDescriptor_t x() const { return x_; }
  cudnnTensorDescriptor_t param() const { return param_; }

 private:
  cudnnTensorDescriptor_t x_ = nullptr, param_ = nullptr;
};

void check_eps(double eps) {
  CBST_CHECK(eps >= CUDNN_BN_MIN_EPSILON, "batch_norm2d: eps ", eps,
             " is below cuDNN's minimum ", CUDNN_BN_MIN_EPSILON,
             "; hint: use a larger eps (torch's default is 1e-5)");
}

// cuDNN's blending scalars are float for f32 data and double for f64.
struct Blend {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  bool is_double;
  explicit Blend(DType t) : is_double(t == DType::f64) {}
  const void* one() const { return is_double ? static_cast<const void*>(&d1) : &f1; }
  const void* zero() const { return is_double ? static_cast<const void*>(&d0) : &f0; }
};

void* ptr_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

}  // namespace

void batch_norm_train_forward_cuda(const Tensor& y, const Tensor& save_mean,
                                   const Tensor& save_invstd, const Tensor& x,
                                   const Tensor& gamma, const Tensor& beta,
                                   const Tensor& running_mean, const Tensor& running_var,
                                   double momentum, double eps) {
  check_eps(eps);
  const BnDescs d(x);
  const Blend s(x.dtype());
  // exponentialAverageFactor is torch's momentum: running = (1 − f)·running + f·batch.
  CBST_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      cudnn_handle(), kMode, s.one(), s.zero(), d.x(), x.raw_data(), d.x(), y.raw_data(),
      d.param(), gamma.raw_data(), beta.raw_data(), momentum, ptr_or_null(running_mean),
      ptr_or_null(running_var), eps, save_mean.raw_data(), save_invstd.raw_data()));
}

void batch_norm_train_backward_cuda(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                    const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                    const Tensor& save_mean, const Tensor& save_invstd,
                                    double eps) {
  check_eps(eps);
  const BnDescs d(x);
  const Blend s(x.dtype());
  CBST_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_handle(), kMode, s.one(), s.zero(), s.one(), s.zero(), d.x(), x.raw_data(), d.x(),
      dy.raw_data(), d.x(), dx.raw_data(), d.param(), gamma.raw_data(), dgamma.raw_data(),
      dbeta.raw_data(), eps, save_mean.raw_data(), save_invstd.raw_data()));
}

void batch_norm_eval_forward_cuda(const Tensor& y, const Tensor& x, const Tensor& gamma,
                                  const Tensor& beta, const Tensor& running_mean,
                                  const Tensor& running_var, double eps) {
  check_eps(eps);
  const BnDescs d(x);
  const Blend s(x.dtype());
  CBST_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      cudnn_handle(), kMode, s.one(), s.zero(), d.x(), x.raw_data(), d.x(), y.raw_data(),
      d.param(), gamma.raw_data(), beta.raw_data(), running_mean.raw_data(),
      running_var.raw_data(), eps));
}

}  // namespace cbst::conv_detail
