// CUDA bilinear upsampling. The per-axis tables (a few KB) are uploaded once per axis and
// device and kept: an upload is a host-to-device copy that waits for the stream, and
// uploading fourteen tables on every call stalled each step as many times. Forward: one
// thread per output. Backward: one thread per input element, a fixed-order sum over the
// output rows × columns that read it (gather form; no atomics).
#include <deque>
#include <mutex>
#include <vector>

#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "layers/upsample_kernels.h"

namespace cbst::layer_kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <class V>
Tensor upload(const std::vector<V>& v) {
  return Tensor::from_vector<V>(v, {int64_t(v.size())}).to(Device::cuda(cuda_current_device()));
}

struct DeviceAxis {
  Tensor i0, i1, l0, l1, begin, index, weight;
  explicit DeviceAxis(const BilinearAxis& a)
      : i0(upload(a.i0)), i1(upload(a.i1)), l0(upload(a.l0)), l1(upload(a.l1)),
        begin(upload(a.gather_begin)), index(upload(a.gather_index)), weight(upload(a.gather_weight)) {}
};

// The device tables of `a` on the current device; returned by value (handles), so that an
// entry evicted later stays alive for this call. The stream orders the reuse of evicted
// memory after the kernels that read it.
DeviceAxis device_axis(const BilinearAxis& a) {
  struct Entry {
    int device;
    BilinearAxis host;
    DeviceAxis tables;
  };
  // A network has a few; evaluation at many sizes, more. Oldest out first: beyond 64 sizes in
  // turn, every call uploads again (as before the cache).
  constexpr size_t kMaxEntries = 64;
  static std::mutex mutex;
  static auto* cache = new std::deque<Entry>();  // never destroyed: no CUDA frees at exit
  const int device = cuda_current_device();
  std::lock_guard<std::mutex> lock(mutex);
  for (const Entry& e : *cache)
    if (e.device == device && e.host == a) return e.tables;
  if (cache->size() == kMaxEntries) cache->pop_front();
  cache->push_back({device, a, DeviceAxis(a)});
  return cache->back().tables;
}

template <class T>
__global__ void upsample_forward_kernel(T* y, const T* x, int64_t total, int64_t h, int64_t w,
                                        int64_t ho, int64_t wo, const int64_t* ri0,
                                        const int64_t* ri1, const double* rl0, const double* rl1,
                                        const int64_t* ci0, const int64_t* ci1, const double* cl0,
                                        const double* cl1) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(blockDim.x) * gridDim.x) {
    const int64_t j = k % wo, i = (k / wo) % ho, plane = k / (wo * ho);
    const T* xs = x + plane * h * w;
    const T* r0 = xs + ri0[i] * w;
    const T* r1 = xs + ri1[i] * w;
    const T a0 = T(rl0[i]), a1 = T(rl1[i]), b0 = T(cl0[j]), b1 = T(cl1[j]);
    const int64_t c0 = ci0[j], c1 = ci1[j];
    y[k] = a0 * (b0 * r0[c0] + b1 * r0[c1]) + a1 * (b0 * r1[c0] + b1 * r1[c1]);
  }
}

template <class T>
__global__ void upsample_backward_kernel(T* dx, const T* dy, int64_t total, int64_t h, int64_t w,
                                         int64_t ho, int64_t wo, const int64_t* rbegin,
                                         const int64_t* rindex, const double* rweight,
                                         const int64_t* cbegin, const int64_t* cindex,
                                         const double* cweight) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(blockDim.x) * gridDim.x) {
    const int64_t c = k % w, r = (k / w) % h, plane = k / (w * h);
    const T* g = dy + plane * ho * wo;
    T sum = 0;
    for (int64_t a = rbegin[r]; a < rbegin[r + 1]; ++a) {
      const T* grow = g + rindex[a] * wo;
      const T wr = T(rweight[a]);
      for (int64_t b = cbegin[c]; b < cbegin[c + 1]; ++b) sum += wr * T(cweight[b]) * grow[cindex[b]];
    }
    dx[k] = sum;
  }
}

}  // namespace

void upsample_bilinear_forward(const Tensor& y, const Tensor& x, const BilinearAxis& rows,
                               const BilinearAxis& cols) {
  const DeviceAxis r = device_axis(rows), c = device_axis(cols);
  const int64_t total = y.numel();
  CBST_DISPATCH_FLOAT_TYPES(x.dtype(), "upsample_bilinear", [&] {
    upsample_forward_kernel<scalar_t><<<cuda_blocks(total, kThreads), kThreads, 0, cuda_stream()>>>(
        y.data<scalar_t>(), x.data<scalar_t>(), total, x.size(2), x.size(3), y.size(2), y.size(3),
        r.i0.data<int64_t>(), r.i1.data<int64_t>(), r.l0.data<double>(), r.l1.data<double>(),
        c.i0.data<int64_t>(), c.i1.data<int64_t>(), c.l0.data<double>(), c.l1.data<double>());
  });
  CBST_CUDA_LAUNCH_CHECK();
}

void upsample_bilinear_backward(const Tensor& dx, const Tensor& dy, const BilinearAxis& rows,
                                const BilinearAxis& cols) {
  const DeviceAxis r = device_axis(rows), c = device_axis(cols);
  const int64_t total = dx.numel();
  CBST_DISPATCH_FLOAT_TYPES(dx.dtype(), "upsample_bilinear_backward", [&] {
    upsample_backward_kernel<scalar_t><<<cuda_blocks(total, kThreads), kThreads, 0, cuda_stream()>>>(
        dx.data<scalar_t>(), dy.data<scalar_t>(), total, dx.size(2), dx.size(3), dy.size(2),
        dy.size(3), r.begin.data<int64_t>(), r.index.data<int64_t>(), r.weight.data<double>(),
        c.begin.data<int64_t>(), c.index.data<int64_t>(), c.weight.data<double>());
  });
  CBST_CUDA_LAUNCH_CHECK();
}

}  // namespace cbst::layer_kernels::cuda
