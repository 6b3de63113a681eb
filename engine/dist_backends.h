// Internal: the backends behind engine/dist.h. dist_mpi.cpp is compiled with MPI
// (CBST_WITH_MPI), dist_nccl.cpp with NCCL (CBST_WITH_NCCL); neither header leaks into the
// public one.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/dist.h"

namespace cbst::dist::detail {

#if CBST_WITH_MPI
std::unique_ptr<Communicator> make_mpi_world();  // MPI_Init_thread, MPI_COMM_WORLD
void mpi_finalize();
bool mpi_initialized();
[[noreturn]] void mpi_abort(int exit_code);
#endif

#if CBST_WITH_NCCL
// An NCCL communicator over the ranks of `bootstrap` for one CUDA device: rank 0 makes the
// unique id, `bootstrap` (MPI, host memory) broadcasts it, every rank joins with
// ncclCommInitRank. Collectives run on a communication stream of its own, ordered after the
// engine's stream of that device and, but for the started ones, before it (dist_nccl.cpp).
class NcclDevice {
 public:
  NcclDevice(Communicator& bootstrap, Device device);
  ~NcclDevice();
  NcclDevice(const NcclDevice&) = delete;
  NcclDevice& operator=(const NcclDevice&) = delete;
  void all_reduce_sum(float* data, int64_t n);
  std::unique_ptr<PendingCollective> start_all_reduce_sum(float* data, int64_t n);
  void broadcast(float* data, int64_t n, int root);

 private:
  void* comm_ = nullptr;    // ncclComm_t
  void* stream_ = nullptr;  // cudaStream_t: the communication stream
  Device device_;
};
#endif

}  // namespace cbst::dist::detail
