// The NCCL path of the MPI backend (engine/dist.h): f32 all-reduce and broadcast of CUDA
// buffers. Compiled only when CMake finds NCCL (CBST_NCCL); bootstrapped through the MPI
// communicator, which broadcasts rank 0's unique id.
//
// Streams: every collective of a communicator runs on its own communication stream (as
// PyTorch's ProcessGroupNCCL), so they execute in the order they were issued, which is the
// same on every rank. A collective first waits (an event) for the work queued so far on the
// engine's stream of the device, which wrote its buffer. A blocking one then makes the
// engine's stream wait for it at once; a started one (the gradient buckets overlapping
// backward) lets backward go on, and its wait() makes the engine's stream wait, before the
// gradients are unpacked and the optimizer steps. The host never blocks.
// Untested: no session that wrote it had a GPU (README, "Training on several GPUs or nodes").
#if CBST_WITH_NCCL

#include <nccl.h>

#include "engine/cuda/context.h"
#include "engine/dispatch.h"
#include "engine/dist_backends.h"

#define CBST_NCCL_CHECK(expr)                                                                  \
  do {                                                                                         \
    const ncclResult_t cbst_nccl_rc_ = (expr);                                                 \
    if (cbst_nccl_rc_ != ncclSuccess) [[unlikely]]                                             \
      ::cbst::detail::fail_library("NCCL", #expr, ncclGetErrorString(cbst_nccl_rc_), __FILE__, \
                                   __LINE__);                                                  \
  } while (0)

namespace cbst::dist::detail {

namespace {

ncclComm_t handle(void* comm) { return static_cast<ncclComm_t>(comm); }
cudaStream_t stream(void* s) { return static_cast<cudaStream_t>(s); }

// An event without timing, destroyed with its owner (CUDA defers the release of an event that
// is still pending).
class Event {
 public:
  Event() { CBST_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~Event() { CBST_CUDA_CHECK_LOG(cudaEventDestroy(event_)); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// `later` waits for everything queued on `earlier` so far.
void order_after(cudaStream_t later, cudaStream_t earlier) {
  Event e;
  CBST_CUDA_CHECK(cudaEventRecord(e.get(), earlier));
  CBST_CUDA_CHECK(cudaStreamWaitEvent(later, e.get(), 0));
}

class NcclPending final : public PendingCollective {
 public:
  NcclPending(Device device, cudaStream_t comm_stream) : device_(device) {
    CBST_CUDA_CHECK(cudaEventRecord(done_.get(), comm_stream));
  }
  bool test() override {
    const cudaError_t rc = cudaEventQuery(done_.get());
    if (rc == cudaErrorNotReady) {
      if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();  // not an error
      return false;
    }
    CBST_CUDA_CHECK(rc);
    return true;
  }
  void wait() override {
    cuda_op_begin(device_);
    CBST_CUDA_CHECK(cudaStreamWaitEvent(cuda_stream(), done_.get(), 0));
  }

 private:
  Device device_;
  Event done_;
};

}  // namespace

NcclDevice::NcclDevice(Communicator& bootstrap, Device device) : device_(device) {
  CBST_CHECK(device.is_cuda(), "NCCL: needs a CUDA device, got ", device.str());
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) CBST_NCCL_CHECK(ncclGetUniqueId(&id));
  bootstrap.broadcast(&id, int64_t(sizeof id), 0);
  cuda_op_begin(device);
  cudaStream_t s = nullptr;
  CBST_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
  ncclComm_t comm = nullptr;
  CBST_NCCL_CHECK(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()));
  comm_ = comm;
}

NcclDevice::~NcclDevice() {
  if (comm_) ncclCommDestroy(handle(comm_));
  if (stream_) {
    CBST_CUDA_CHECK_LOG(cudaSetDevice(device_.index));
    CBST_CUDA_CHECK_LOG(cudaStreamDestroy(stream(stream_)));
  }
}

// The blocking one is the started one waited for at once (the engine's stream ordered after it).
void NcclDevice::all_reduce_sum(float* data, int64_t n) { start_all_reduce_sum(data, n)->wait(); }

std::unique_ptr<PendingCollective> NcclDevice::start_all_reduce_sum(float* data, int64_t n) {
  cuda_op_begin(device_);
  order_after(stream(stream_), cuda_stream());
  CBST_NCCL_CHECK(ncclAllReduce(data, data, size_t(n), ncclFloat32, ncclSum, handle(comm_), stream(stream_)));
  auto pending = std::make_unique<NcclPending>(device_, stream(stream_));
  cuda_op_end("nccl all_reduce (started)");
  return pending;
}

void NcclDevice::broadcast(float* data, int64_t n, int root) {
  cuda_op_begin(device_);
  order_after(stream(stream_), cuda_stream());
  CBST_NCCL_CHECK(ncclBroadcast(data, data, size_t(n), ncclFloat32, root, handle(comm_), stream(stream_)));
  order_after(cuda_stream(), stream(stream_));
  cuda_op_end("nccl broadcast");
}

}  // namespace cbst::dist::detail

#endif  // CBST_WITH_NCCL
