// The MPI backend of engine/dist.h (compiled when CMake finds MPI; CBST_MPI). Host buffers go
// through MPI_Allreduce / MPI_Bcast on MPI_COMM_WORLD; CUDA buffers through NCCL when it is
// built (dist_nccl.cpp), else they are staged through host memory by the caller.
#if CBST_WITH_MPI

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <vector>

#include "engine/dist_backends.h"

namespace cbst::dist::detail {

namespace {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, size_t(std::max(length, 0)));
}

#define CBST_MPI_CHECK(expr)                                                                  \
  do {                                                                                        \
    const int cbst_mpi_rc_ = (expr);                                                          \
    if (cbst_mpi_rc_ != MPI_SUCCESS) [[unlikely]]                                             \
      CBST_THROW("MPI call ", #expr, " failed: ", mpi_error_text(cbst_mpi_rc_), " [", __FILE__, \
                 ":", __LINE__, "]");                                                         \
  } while (0)

// MPI counts are ints: large buffers go in chunks of at most 2^30 elements.
constexpr int64_t kMaxChunk = int64_t(1) << 30;

template <class T>
void all_reduce_chunks(T* data, int64_t n, MPI_Datatype type) {
  for (int64_t done = 0; done < n;) {
    const int64_t count = std::min(kMaxChunk, n - done);
    CBST_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + done, int(count), type, MPI_SUM, MPI_COMM_WORLD));
    done += count;
  }
}

// MPI_Iallreduce of every chunk; MPI_Test/MPI_Waitall on the main thread (MPI_THREAD_FUNNELED:
// the grad-ready hooks that start and test them run on the thread that runs backward).
class MpiPending final : public PendingCollective {
 public:
  MpiPending(float* data, int64_t n) {
    for (int64_t done = 0; done < n;) {
      const int64_t count = std::min(kMaxChunk, n - done);
      MPI_Request request = MPI_REQUEST_NULL;
      CBST_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data + done, int(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request));
      requests_.push_back(request);
      done += count;
    }
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    CBST_MPI_CHECK(MPI_Testall(int(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE));
    done_ = flag != 0;
    return done_;
  }
  void wait() override {
    if (!done_) CBST_MPI_CHECK(MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    done_ = true;
  }

 private:
  std::vector<MPI_Request> requests_;
  bool done_ = false;
};

void broadcast_chunks(uint8_t* data, int64_t bytes, int root) {
  for (int64_t done = 0; done < bytes;) {
    const int64_t count = std::min(kMaxChunk, bytes - done);
    CBST_MPI_CHECK(MPI_Bcast(data + done, int(count), MPI_BYTE, root, MPI_COMM_WORLD));
    done += count;
  }
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      // Only the main thread calls MPI (loader threads never do; the non-blocking gradient
      // all-reduces are started and driven from backward, on the main thread too).
      int provided = 0;
      CBST_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    }
    // Errors come back as return codes, become cbst::Error, and main aborts the job.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    CBST_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    CBST_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    MPI_Comm node;
    CBST_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    CBST_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    MPI_Comm_free(&node);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return nccl_built() ? "mpi+nccl" : "mpi"; }

  void all_reduce_sum(float* data, int64_t n) override { all_reduce_chunks(data, n, MPI_FLOAT); }
  void all_reduce_sum(double* data, int64_t n) override { all_reduce_chunks(data, n, MPI_DOUBLE); }
  void all_reduce_sum(int64_t* data, int64_t n) override { all_reduce_chunks(data, n, MPI_INT64_T); }
  void broadcast(void* data, int64_t bytes, int root) override {
    broadcast_chunks(static_cast<uint8_t*>(data), bytes, root);
  }
  // Sizes first, then each rank's part broadcast from it: any total size, in int-sized chunks.
  std::vector<uint8_t> all_gather(const void* data, int64_t bytes) override {
    std::vector<int64_t> sizes(size_t(size_), 0);
    sizes[size_t(rank_)] = bytes;
    all_reduce_sum(sizes.data(), int64_t(sizes.size()));
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    std::vector<uint8_t> out(static_cast<size_t>(total));
    int64_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_ && bytes > 0) std::copy_n(static_cast<const uint8_t*>(data), bytes, out.data() + offset);
      broadcast_chunks(out.data() + offset, sizes[size_t(r)], r);
      offset += sizes[size_t(r)];
    }
    return out;
  }
  void barrier() override { CBST_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }
  std::unique_ptr<PendingCollective> start_all_reduce_sum(float* data, int64_t n) override {
    return std::make_unique<MpiPending>(data, n);
  }

#if CBST_WITH_NCCL
  bool all_reduce_sum_device(float* data, int64_t n, Device device) override {
    nccl(device).all_reduce_sum(data, n);
    return true;
  }
  bool broadcast_device(float* data, int64_t n, int root, Device device) override {
    nccl(device).broadcast(data, n, root);
    return true;
  }
  std::unique_ptr<PendingCollective> start_all_reduce_sum_device(float* data, int64_t n, Device device) override {
    return nccl(device).start_all_reduce_sum(data, n);
  }

 private:
  NcclDevice& nccl(Device device) {
    auto it = nccl_.find(device.index);
    if (it == nccl_.end()) it = nccl_.emplace(device.index, std::make_unique<NcclDevice>(*this, device)).first;
    return *it->second;
  }
  std::map<int, std::unique_ptr<NcclDevice>> nccl_;
#endif

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_world() { return std::make_unique<MpiCommunicator>(); }

bool mpi_initialized() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void mpi_finalize() {
  if (mpi_initialized()) MPI_Finalize();
}

void mpi_abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this is for the compiler
}

}  // namespace cbst::dist::detail

#endif  // CBST_WITH_MPI
