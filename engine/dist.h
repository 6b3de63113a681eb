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

// A collective that was started and not waited for (Communicator::start_*): its buffer must
// stay allocated and untouched until wait() returns.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Drives it on (MPI moves non-blocking collectives only inside MPI calls) without waiting;
  // true once it has completed.
  virtual bool test() = 0;
  // Returns when the result is in the buffer (host memory), or when the device's stream is
  // ordered after the collective (device memory: the host does not wait).
  virtual void wait() = 0;
};

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

  // Non-blocking all_reduce_sum (gradient buckets overlapping backward): starts it and
  // returns. Every rank starts its non-blocking collectives in the same order. The base
  // class's runs the blocking one and returns it completed.
  virtual std::unique_ptr<PendingCollective> start_all_reduce_sum(float* data, int64_t n);
  // Device memory: the all-reduce runs on a communication stream after the work queued on the
  // device's stream so far, and wait() makes the device's stream wait for it. Null when this
  // backend has no device path.
  virtual std::unique_ptr<PendingCollective> start_all_reduce_sum_device(float* data, int64_t n, Device device);
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

// Gradient all-reduce in buckets, overlapped with backward as PyTorch's DDP does. The
// gradients of `params` (the same list on every rank) are packed into flat f32 buffers of
// about `bucket_bytes` each (a parameter larger than that gets a bucket of its own), filled
// from the *last* parameter backwards, the order in which backward makes gradients final
// (a model's parameters are registered in forward order). The first bucket holds only about
// `first_bucket_bytes`, so that the first all-reduce starts early in backward (as DDP). Each bucket is summed across ranks
// in one non-blocking all-reduce: fewer, larger messages than one per parameter (latency),
// bounded extra memory (one copy of the gradients, allocated once, at construction).
//
// With `overlap` (and more than one rank) a grad-ready hook on every parameter
// (set_grad_ready_hook, engine/autograd.h) counts the parameters whose gradient is final;
// a bucket is launched (packed, all-reduce started) as soon as all its parameters are ready
// and every earlier bucket was launched, so all ranks start the same collectives in the same
// order; each hook also drives the launched ones on. finish(), after backward, launches the
// buckets still waiting (parameters without a gradient in this pass take part with zeros,
// their gradient then allocated, so every rank reduces the same buffers), waits for all,
// and unpacks the sums, times `scale`, into the gradients. Without `overlap` finish() alone
// does all of it, after backward. Both make the same collectives on the same buffers, so the
// gradients are bit-identical either way. Exactly one backward per finish() (the hooks refuse
// a second gradient for a parameter before finish()).
class GradientBuckets {
 public:
  struct Options {
    int64_t first_bucket_bytes = int64_t(1) << 20;
    int64_t bucket_bytes = int64_t(4) << 20;
    bool overlap = true;
  };
  struct Bucket {
    std::vector<size_t> params = {};  // indices into the parameter list
    int64_t numel = 0;
    Device device = Device::cpu();
    Tensor flat = {};
    Tensor staged = {};  // host copy of `flat`: CUDA buffers reduced by MPI (no NCCL)
    size_t ready = 0;    // parameters of this bucket whose gradient is final in this pass
    std::unique_ptr<PendingCollective> pending = {};  // launched, not yet finished
  };
  GradientBuckets(Communicator& comm, std::vector<Tensor> params, Options options);
  explicit GradientBuckets(Communicator& comm, std::vector<Tensor> params)
      : GradientBuckets(comm, std::move(params), Options{}) {}
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // After backward: sums every gradient across ranks and multiplies it by `scale` (1 / ranks
  // for a mean).
  void finish(double scale = 1.0);
  const std::vector<Bucket>& buckets() const { return buckets_; }
  size_t launched() const { return launched_; }  // buckets started in this pass so far

 private:
  void grad_ready(size_t param);
  void launch(Bucket& bucket);

  Communicator& comm_;
  std::vector<Tensor> params_;
  bool hooked_ = false;
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<bool> ready_;        // per parameter, in this pass
  std::vector<Bucket> buckets_;
  size_t launched_ = 0;  // buckets_[0, launched_) are launched, in this order on every rank
};

}  // namespace cbst::dist
