// The NCCL path of the MPI backend (engine/dist.h): f32 all-reduce and broadcast of CUDA
// buffers on the engine's stream of their device. Compiled only when CMake finds NCCL
// (CBST_NCCL); bootstrapped through the MPI communicator, which broadcasts rank 0's unique id.
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
}  // namespace

NcclDevice::NcclDevice(Communicator& bootstrap, Device device) : device_(device) {
  CBST_CHECK(device.is_cuda(), "NCCL: needs a CUDA device, got ", device.str());
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) CBST_NCCL_CHECK(ncclGetUniqueId(&id));
  bootstrap.broadcast(&id, int64_t(sizeof id), 0);
  cuda_op_begin(device);
  ncclComm_t comm = nullptr;
  CBST_NCCL_CHECK(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()));
  comm_ = comm;
}

NcclDevice::~NcclDevice() {
  if (comm_) ncclCommDestroy(handle(comm_));
}

void NcclDevice::all_reduce_sum(float* data, int64_t n) {
  cuda_op_begin(device_);
  CBST_NCCL_CHECK(ncclAllReduce(data, data, size_t(n), ncclFloat32, ncclSum, handle(comm_), cuda_stream()));
  cuda_op_end("nccl all_reduce");
}

void NcclDevice::broadcast(float* data, int64_t n, int root) {
  cuda_op_begin(device_);
  CBST_NCCL_CHECK(ncclBroadcast(data, data, size_t(n), ncclFloat32, root, handle(comm_), cuda_stream()));
  cuda_op_end("nccl broadcast");
}

}  // namespace cbst::dist::detail

#endif  // CBST_WITH_NCCL
