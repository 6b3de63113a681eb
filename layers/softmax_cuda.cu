// CUDA softmax / log_softmax through cuDNN (CUDNN_SOFTMAX_MODE_CHANNEL over an
// (N, C, inner, 1) descriptor, so any trailing dims are "spatial").
#include "engine/cuda/context.h"
#include "layers/softmax_kernels.h"

namespace cbst::layer_kernels::cuda {

namespace {

// Owns one cuDNN tensor descriptor.
class TensorDescriptor {
 public:
  explicit TensorDescriptor(const Tensor& t) {
    CBST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_));
    const int64_t n = t.size(0), c = t.size(1);
    const int64_t inner = t.numel() / (n * c);
    CBST_CHECK(n < (int64_t(1) << 31) && c < (int64_t(1) << 31) && inner < (int64_t(1) << 31),
               "softmax: tensor ", t.str(), " is too large for a cuDNN descriptor");
    const cudnnDataType_t type = t.dtype() == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    CBST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, type, int(n), int(c),
                                                int(inner), 1));
  }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

cudnnSoftmaxAlgorithm_t algorithm(bool log) {
  return log ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE;
}

void check_dtype(const Tensor& t) {
  CBST_CHECK(is_floating(t.dtype()), "softmax: needs f32 or f64, got ", t.str());
}

}  // namespace

void softmax_forward(const Tensor& y, const Tensor& x, bool log) {
  check_dtype(x);
  const TensorDescriptor desc(x);
  // alpha/beta have the type of the computation: double for f64 data, float otherwise.
  const double one_d = 1.0, zero_d = 0.0;
  const float one_f = 1.0f, zero_f = 0.0f;
  const bool f64 = x.dtype() == DType::f64;
  CBST_CUDNN_CHECK(cudnnSoftmaxForward(cudnn_handle(), algorithm(log), CUDNN_SOFTMAX_MODE_CHANNEL,
                                       f64 ? (const void*)&one_d : (const void*)&one_f,
                                       desc.get(), x.raw_data(),
                                       f64 ? (const void*)&zero_d : (const void*)&zero_f,
                                       desc.get(), y.raw_data()));
}

void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log) {
  check_dtype(y);
  if (y.numel() == 0) return;
  const TensorDescriptor desc(y);
  const double one_d = 1.0, zero_d = 0.0;
  const float one_f = 1.0f, zero_f = 0.0f;
  const bool f64 = y.dtype() == DType::f64;
  CBST_CUDNN_CHECK(cudnnSoftmaxBackward(cudnn_handle(), algorithm(log), CUDNN_SOFTMAX_MODE_CHANNEL,
                                        f64 ? (const void*)&one_d : (const void*)&one_f,
                                        desc.get(), y.raw_data(), desc.get(), dy.raw_data(),
                                        f64 ? (const void*)&zero_d : (const void*)&zero_f,
                                        desc.get(), dx.raw_data()));
}

}  // namespace cbst::layer_kernels::cuda
