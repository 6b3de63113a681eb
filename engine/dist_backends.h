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
// ncclCommInitRank. Collectives run on the engine's stream of that device.
class NcclDevice {
 public:
  NcclDevice(Communicator& bootstrap, Device device);
  ~NcclDevice();
  NcclDevice(const NcclDevice&) = delete;
  NcclDevice& operator=(const NcclDevice&) = delete;
  void all_reduce_sum(float* data, int64_t n);
  void broadcast(float* data, int64_t n, int root);

 private:
  void* comm_ = nullptr;  // ncclComm_t
  Device device_;
};
#endif

}  // namespace cbst::dist::detail
