// Data-parallel communication: one process per device, a small Communicator interface over
// an existing distributed engine (DESIGN §10), never a home-made transport.
//
// Backends:
//   single  one process, every collective a no-op (a plain `cbst train`, all unit tests);
//   mpi     OpenMPI (or any MPI) on host memory, chosen when the process was started by an
//           MPI launcher (mpirun/mpiexec, or Slurm's srun with PMI/PMIx): the launcher sets
//           OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK, and world() then calls MPI_Init;
//   nccl    for CUDA tensors, when cbst was built with NCCL: a communicator per device,
//           bootstrapped through MPI (rank 0's ncclGetUniqueId broadcast with MPI_Bcast) the
//           first time a CUDA buffer is reduced. Host buffers keep going through MPI.
// Without NCCL, CUDA buffers are staged through host memory and reduced by MPI.
//
// Every collective is called by every rank in the same order with the same counts (except
// all_gather, whose per-rank sizes may differ); a rank that throws instead makes the others
// wait, so `cbst` aborts the whole job on any error (tools/cli/main.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cbst::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this host
  virtual std::string backend() const = 0;  // "single", "mpi", "mpi+nccl"

  // In place, host memory: data[i] ← Σ over ranks of data[i].
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  virtual void all_reduce_sum(double* data, int64_t n) = 0;
  virtual void all_reduce_sum(int64_t* data, int64_t n) = 0;
  // Host memory: `bytes` bytes of rank `root` copied to every rank.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // Every rank's `bytes` bytes (counts may differ), concatenated in rank order, on every rank.
  virtual std::vector<uint8_t> all_gather(const void* data, int64_t bytes) = 0;
  virtual void barrier() = 0;

  // Device memory (f32 on `device`, a CUDA device), in place on the device's stream. Returns
  // false when this backend has no device path; callers then stage through host memory.
  virtual bool all_reduce_sum_device(float* data, int64_t n, Device device);
  virtual bool broadcast_device(float* data, int64_t n, int root, Device device);
};

// The communicator of this process: MPI when started by an MPI launcher (and built with MPI),
// single otherwise. The first call initialises MPI; later calls return the same object.
Communicator& world();
bool launched_by_mpi_launcher();  // the launcher's environment variables are set
bool mpi_built();
bool nccl_built();
// MPI_Finalize at the end of a run; a no-op when MPI was never initialised.
void finalize();
// After an error on this rank: MPI_Abort, so that the ranks waiting for it in a collective do
// not hang (the launcher then ends them all). Returns when this process is not one of several.
void abort_other_ranks(int exit_code);

// ---- tensors (any device). f32 only: gradients, statistics.
void all_reduce_sum(Communicator& comm, const Tensor& t);  // in place; t contiguous
void broadcast(Communicator& comm, const Tensor& t, int root);
// Copies every parameter and buffer of rank 0 to all ranks (start of data-parallel training:
// the replicas then begin equal even if their initialisation differed).
void broadcast_tensors(Communicator& comm, const std::vector<Tensor>& tensors);

// Gradient all-reduce in buckets: the gradients of `params` (in this order, the same on every
// rank) are packed into flat f32 buffers of about `bucket_bytes` each (a parameter larger
// than that gets a bucket of its own), each bucket is summed across ranks in one call, and
// the sums are unpacked. Fewer, larger messages than one per parameter (latency), bounded
// extra memory (one copy of the gradients). Buffers are allocated once, at construction.
// Parameters without a gradient on this rank take part with zeros (their gradient is then
// allocated), so every rank reduces the same buffers.
class GradientBuckets {
 public:
  static constexpr int64_t kDefaultBucketBytes = int64_t(4) << 20;
  struct Bucket {
    std::vector<size_t> params = {};  // indices into the parameter list
    int64_t numel = 0;
    Device device = Device::cpu();
    Tensor flat = {};
  };
  explicit GradientBuckets(std::vector<Tensor> params, int64_t bucket_bytes = kDefaultBucketBytes);
  // Sums every gradient across ranks and multiplies it by `scale` (1 / ranks for a mean).
  void all_reduce(Communicator& comm, double scale = 1.0);
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  std::vector<Tensor> params_;
  std::vector<Bucket> buckets_;
};

}  // namespace cbst::dist
