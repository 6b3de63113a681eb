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

class CompletedCollective final : public PendingCollective {
 public:
  bool test() override { return true; }
  void wait() override {}
};

}  // namespace

std::unique_ptr<PendingCollective> Communicator::start_all_reduce_sum(float* data, int64_t n) {
  all_reduce_sum(data, n);
  return std::make_unique<CompletedCollective>();
}

std::unique_ptr<PendingCollective> Communicator::start_all_reduce_sum_device(float*, int64_t, Device) {
  return nullptr;
}

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

GradientBuckets::GradientBuckets(Communicator& comm, std::vector<Tensor> params, Options options)
    : comm_(comm), params_(std::move(params)), bucket_of_(params_.size()), ready_(params_.size(), false) {
  CBST_CHECK(options.bucket_bytes > 0 && options.first_bucket_bytes > 0,
             "GradientBuckets: bucket sizes must be positive, got ", options.first_bucket_bytes, " and ",
             options.bucket_bytes);
  auto numel = [](int64_t bytes) { return std::max<int64_t>(1, bytes / int64_t(sizeof(float))); };
  for (size_t i = params_.size(); i-- > 0;) {
    const Tensor& p = params_[i];
    CBST_CHECK(p.dtype() == DType::f32, "GradientBuckets: parameter ", i, " is ", p.str(), "; gradients are reduced in f32");
    const int64_t capacity = numel(buckets_.size() == 1 ? options.first_bucket_bytes : options.bucket_bytes);
    const bool fits = !buckets_.empty() && buckets_.back().device == p.device() &&
                      buckets_.back().numel + p.numel() <= capacity;
    if (!fits) buckets_.push_back({.device = p.device()});
    buckets_.back().params.push_back(i);
    buckets_.back().numel += p.numel();
    bucket_of_[i] = buckets_.size() - 1;
  }
  for (Bucket& b : buckets_) b.flat = Tensor::empty({b.numel}, DType::f32, b.device);
  // Alone there is nothing to overlap: finish() does everything (nothing at all for scale 1).
  hooked_ = options.overlap && comm_.size() > 1;
  if (hooked_)
    for (size_t i = 0; i < params_.size(); ++i) set_grad_ready_hook(params_[i], [this, i] { grad_ready(i); });
}

GradientBuckets::~GradientBuckets() {
  if (hooked_)
    for (Tensor& p : params_) set_grad_ready_hook(p, nullptr);
  // A collective not finished here means an error is unwinding the step, and the job is
  // about to be aborted (tools/cli/main.cpp). Waiting for it could hang (the other ranks may
  // never join), so its buffers are left allocated for it instead.
  static std::vector<Tensor> abandoned;
  for (Bucket& b : buckets_) {
    if (!b.pending) continue;
    abandoned.push_back(b.flat);
    abandoned.push_back(b.staged);
    (void)b.pending.release();
  }
}

void GradientBuckets::grad_ready(size_t param) {
  CBST_CHECK(!ready_[param], "GradientBuckets: the gradient of parameter ", param,
             " became final twice before finish(); overlapped all-reduce needs exactly one backward per step");
  ready_[param] = true;
  ++buckets_[bucket_of_[param]].ready;
  NoGradGuard no_grad;
  while (launched_ < buckets_.size() && buckets_[launched_].ready == buckets_[launched_].params.size())
    launch(buckets_[launched_++]);
  for (size_t b = 0; b < launched_; ++b) buckets_[b].pending->test();
}

void GradientBuckets::launch(Bucket& b) {
  int64_t offset = 0;
  for (size_t i : b.params) {
    Tensor& p = params_[i];
    if (!p.grad().defined()) p.set_grad(Tensor::zeros(p.shape(), DType::f32, p.device()));
    b.flat.narrow(0, offset, p.numel()).copy_(p.grad().reshape({p.numel()}));
    offset += p.numel();
  }
  if (b.device.is_cpu()) {
    b.pending = comm_.start_all_reduce_sum(b.flat.data<float>(), b.numel);
    return;
  }
  b.pending = comm_.start_all_reduce_sum_device(b.flat.data<float>(), b.numel, b.device);
  if (b.pending) return;
  // No device path: through host memory (the copy waits for the device's stream).
  if (!b.staged.defined()) b.staged = Tensor::empty({b.numel}, DType::f32, Device::cpu());
  b.staged.copy_(b.flat.to(Device::cpu()));
  b.pending = comm_.start_all_reduce_sum(b.staged.data<float>(), b.numel);
}

void GradientBuckets::finish(double scale) {
  if (comm_.size() == 1 && scale == 1.0) return;
  NoGradGuard no_grad;
  while (launched_ < buckets_.size()) launch(buckets_[launched_++]);
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    if (b.staged.defined()) b.flat.copy_(b.staged.to(b.device));
    int64_t offset = 0;
    for (size_t i : b.params) {
      Tensor& p = params_[i];
      const Tensor slice = b.flat.narrow(0, offset, p.numel()).reshape(p.shape());
      Tensor g = p.grad();
      g.copy_(scale == 1.0 ? slice : mul(slice, scale));
      offset += p.numel();
    }
    b.ready = 0;
  }
  launched_ = 0;
  ready_.assign(params_.size(), false);
}

}  // namespace cbst::dist
