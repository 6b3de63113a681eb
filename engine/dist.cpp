// The single-process communicator, the choice of backend, and the tensor-level collectives
// (device staging, gradient buckets).
#include "engine/dist.h"

#include <cstdlib>
#include <cstring>

#include "engine/autograd.h"
#include "engine/dist_backends.h"
#include "engine/ops.h"

namespace cbst::dist {

bool Communicator::all_reduce_sum_device(float*, int64_t, Device) { return false; }
bool Communicator::broadcast_device(float*, int64_t, int, Device) { return false; }

namespace {

// One process: every collective leaves the data as it is.
class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string backend() const override { return "single"; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_reduce_sum(double*, int64_t) override {}
  void all_reduce_sum(int64_t*, int64_t) override {}
  void broadcast(void*, int64_t, int) override {}
  std::vector<uint8_t> all_gather(const void* data, int64_t bytes) override {
    const auto* p = static_cast<const uint8_t*>(data);
    return std::vector<uint8_t>(p, p + bytes);
  }
  void barrier() override {}
};

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

#if !CBST_WITH_MPI
// The number of processes the launcher started, when its environment says (0: unknown).
long launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (const char* v = env(name)) return std::atol(v);
  return 0;
}
#endif

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> slot;
  return slot;
}

}  // namespace

bool launched_by_mpi_launcher() {
  return env("OMPI_COMM_WORLD_SIZE") || env("PMI_SIZE") || env("PMI_RANK") || env("PMIX_RANK");
}

bool mpi_built() { return CBST_WITH_MPI != 0; }
bool nccl_built() { return CBST_WITH_NCCL != 0; }

Communicator& world() {
  std::unique_ptr<Communicator>& slot = world_slot();
  if (slot) return *slot;
  if (launched_by_mpi_launcher()) {
#if CBST_WITH_MPI
    slot = detail::make_mpi_world();
    return *slot;
#else
    const long n = launcher_size();
    const char* rank = env("PMIX_RANK");
    CBST_CHECK(n <= 1 && !(n == 0 && rank && std::strcmp(rank, "0") != 0),
               "this process is one of ", n > 0 ? std::to_string(n) : std::string("several"),
               " started by an MPI launcher (mpirun, mpiexec or srun), but this cbst was built without MPI, so ",
               "every process would train alone and write the same run folder; install libopenmpi-dev ",
               "(tools/deps.sh does) and rebuild, or run a single `cbst` without the launcher");
#endif
  }
  slot = std::make_unique<SingleCommunicator>();
  return *slot;
}

void finalize() {
#if CBST_WITH_MPI
  world_slot().reset();  // NCCL communicators go before MPI
  detail::mpi_finalize();
#endif
}

void abort_other_ranks(int exit_code) {
#if CBST_WITH_MPI
  if (world_slot() && world_slot()->size() > 1 && detail::mpi_initialized()) detail::mpi_abort(exit_code);
#endif
  (void)exit_code;
}

// ---- tensors

namespace {

void check_f32_contiguous(const char* op, const Tensor& t) {
  CBST_CHECK(t.defined() && t.dtype() == DType::f32 && t.is_contiguous(), "dist::", op,
             ": needs a contiguous f32 tensor, got ", t.defined() ? t.str() : std::string("an undefined tensor"));
}

}  // namespace

void all_reduce_sum(Communicator& comm, const Tensor& t) {
  check_f32_contiguous("all_reduce_sum", t);
  if (comm.size() == 1 || t.numel() == 0) return;
  if (t.device().is_cpu()) {
    comm.all_reduce_sum(t.data<float>(), t.numel());
    return;
  }
  if (comm.all_reduce_sum_device(t.data<float>(), t.numel(), t.device())) return;
  NoGradGuard no_grad;
  Tensor host = t.to(Device::cpu()).contiguous();
  comm.all_reduce_sum(host.data<float>(), host.numel());
  Tensor(t).copy_(host.to(t.device()));
}

void broadcast(Communicator& comm, const Tensor& t, int root) {
  CBST_CHECK(t.defined() && t.is_contiguous(), "dist::broadcast: needs a contiguous tensor");
  if (comm.size() == 1 || t.numel() == 0) return;
  if (t.device().is_cpu()) {
    comm.broadcast(t.raw_data(), int64_t(t.nbytes()), root);
    return;
  }
  if (t.dtype() == DType::f32 && comm.broadcast_device(t.data<float>(), t.numel(), root, t.device())) return;
  NoGradGuard no_grad;
  Tensor host = t.to(Device::cpu()).contiguous();
  comm.broadcast(host.raw_data(), int64_t(host.nbytes()), root);
  Tensor(t).copy_(host.to(t.device()));
}

void broadcast_tensors(Communicator& comm, const std::vector<Tensor>& tensors) {
  if (comm.size() == 1) return;
  NoGradGuard no_grad;
  for (const Tensor& t : tensors) {
    if (t.is_contiguous()) {
      broadcast(comm, t, 0);
    } else {
      Tensor c = t.contiguous();
      broadcast(comm, c, 0);
      Tensor(t).copy_(c);
    }
  }
}

GradientBuckets::GradientBuckets(std::vector<Tensor> params, int64_t bucket_bytes) : params_(std::move(params)) {
  CBST_CHECK(bucket_bytes > 0, "GradientBuckets: bucket_bytes must be positive, got ", bucket_bytes);
  const int64_t bucket_numel = std::max<int64_t>(1, bucket_bytes / int64_t(sizeof(float)));
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    CBST_CHECK(p.dtype() == DType::f32, "GradientBuckets: parameter ", i, " is ", p.str(), "; gradients are reduced in f32");
    const bool fits = !buckets_.empty() && buckets_.back().device == p.device() &&
                      buckets_.back().numel + p.numel() <= bucket_numel;
    if (!fits) buckets_.push_back({.device = p.device()});
    buckets_.back().params.push_back(i);
    buckets_.back().numel += p.numel();
  }
  for (Bucket& b : buckets_) b.flat = Tensor::empty({b.numel}, DType::f32, b.device);
}

void GradientBuckets::all_reduce(Communicator& comm, double scale) {
  if (comm.size() == 1 && scale == 1.0) return;
  NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    int64_t offset = 0;
    for (size_t i : b.params) {
      Tensor& p = params_[i];
      if (!p.grad().defined()) p.set_grad(Tensor::zeros(p.shape(), DType::f32, p.device()));
      b.flat.narrow(0, offset, p.numel()).copy_(p.grad().reshape({p.numel()}));
      offset += p.numel();
    }
    all_reduce_sum(comm, b.flat);
    offset = 0;
    for (size_t i : b.params) {
      Tensor& p = params_[i];
      const Tensor slice = b.flat.narrow(0, offset, p.numel()).reshape(p.shape());
      Tensor g = p.grad();
      g.copy_(scale == 1.0 ? slice : mul(slice, scale));
      offset += p.numel();
    }
  }
}

}  // namespace cbst::dist
