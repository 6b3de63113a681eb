// CPU GEMM: OpenBLAS when the build found it, otherwise (or when selected) our blocked
// kernel. Row-major, C = alpha·op(A)·op(B) + beta·C.
//
// OpenBLAS runs single-threaded inside our OpenMP threads: a large product is cut into
// blocks of C's columns (or rows, when C is narrow) and the threads share the blocks, each
// calling OpenBLAS on its own. OpenBLAS's own pthreads, spinning in sched_yield between calls,
// used to take the cores from the OpenMP threads of the element-wise kernels that run between
// GEMMs (a quarter of small-fcn's training step was spent yielding). Every block holds more
// than 10⁶ multiply-adds, above OpenBLAS's small-matrix path.
//
// The cut depends on the product's shape alone, never on the thread count, so results do not
// depend on the thread count whatever OpenBLAS's kernel does inside a call. That matters:
// OpenBLAS's AVX2 SGEMM kernel (Haswell, and Zen up to Zen 3) sums some columns of a call (the
// first eight, the last eight, a few in between, depending on the call's width) in another
// order than the rest, so a column's last bits depend on which call computed it. Its AVX-512
// kernel sums every element as one chain, and so does the blocked kernel below.
//
// The blocked kernel packs a KC×NC panel of op(B) and an MC×KC block of op(A) into
// contiguous buffers (resolving transposes once), then a 4×16 register-blocked micro-kernel
// runs over the packed data. Threads split the M dimension, so each C element is written by
// one thread and the result does not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <type_traits>
#include <vector>

#include "engine/dispatch.h"
#include "engine/kernels.h"

#if CBST_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace cbst::kern {

namespace {
std::atomic<CpuGemmImpl> g_impl{CpuGemmImpl::automatic};
}

void set_cpu_gemm_impl(CpuGemmImpl impl) { g_impl = impl; }
bool cpu_has_openblas() {
#if CBST_HAVE_OPENBLAS
  return true;
#else
  return false;
#endif
}

namespace cpu {

namespace {

constexpr int64_t kMR = 4, kNR = 16;
constexpr int64_t kMC = 64, kKC = 256, kNC = 1024;

template <class T>
T at(const T* x, bool trans, int64_t ld, int64_t r, int64_t c) {
  return trans ? x[c * ld + r] : x[r * ld + c];
}

// acc[MR][NR] += Apack[MR×kc] · Bpack[kc×NR] (both packed row-major within the tile).
// A is packed column-major within the tile (a[p*MR + i]) so both operands stream forward.
template <class T>
void micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b, T* c, int64_t ldc,
                  int64_t mr, int64_t nr, T alpha) {
  T acc[kMR][kNR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const T* __restrict brow = b + p * kNR;
    const T* __restrict acol = a + p * kMR;
#pragma GCC unroll 4
    for (int64_t i = 0; i < kMR; ++i) {
      const T av = acol[i];
#pragma GCC unroll 16
      for (int64_t j = 0; j < kNR; ++j) acc[i][j] += av * brow[j];
    }
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) c[i * ldc + j] += alpha * acc[i][j];
}

template <class T>
void gemm_blocked_one(const GemmArgs& g, const T* A, const T* B, T* C) {
  const int64_t m = g.m, n = g.n, k = g.k;
  const T alpha = T(g.alpha), beta = T(g.beta);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) C[i * g.ldc + j] = beta == T(0) ? T(0) : beta * C[i * g.ldc + j];

  std::vector<T> bpack;
  for (int64_t jc = 0; jc < n; jc += kNC) {
    const int64_t nc = std::min(kNC, n - jc);
    const int64_t n_tiles = (nc + kNR - 1) / kNR;
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      // Pack op(B)[pc:pc+kc, jc:jc+nc] as n_tiles tiles of kc×NR, zero-padded.
      bpack.assign(size_t(n_tiles * kc * kNR), T(0));
      for (int64_t t = 0; t < n_tiles; ++t)
        for (int64_t p = 0; p < kc; ++p)
          for (int64_t j = 0; j < kNR && t * kNR + j < nc; ++j)
            bpack[size_t((t * kc + p) * kNR + j)] = at(B, g.trans_b, g.ldb, pc + p, jc + t * kNR + j);

      const int64_t m_blocks = (m + kMC - 1) / kMC;
#pragma omp parallel for schedule(dynamic) if (m * nc * kc > (1 << 16))
      for (int64_t ib = 0; ib < m_blocks; ++ib) {
        const int64_t ic = ib * kMC, mc = std::min(kMC, m - ic);
        T apack[kMR * kKC];
        for (int64_t ir = 0; ir < mc; ir += kMR) {
          const int64_t mr = std::min(kMR, mc - ir);
          for (int64_t i = 0; i < kMR; ++i)
            for (int64_t p = 0; p < kc; ++p)
              apack[p * kMR + i] = i < mr ? at(A, g.trans_a, g.lda, ic + ir + i, pc + p) : T(0);
          for (int64_t t = 0; t < n_tiles; ++t) {
            const int64_t nr = std::min(kNR, nc - t * kNR);
            micro_kernel(kc, apack, bpack.data() + t * kc * kNR,
                         C + (ic + ir) * g.ldc + jc + t * kNR, g.ldc, mr, nr, alpha);
          }
        }
      }
    }
  }
}

template <class T>
void gemm_blocked(const GemmArgs& g) {
  for (int64_t b = 0; b < g.batch; ++b)
    gemm_blocked_one<T>(g, static_cast<const T*>(g.a) + b * g.stride_a,
                        static_cast<const T*>(g.b) + b * g.stride_b,
                        static_cast<T*>(g.c) + b * g.stride_c);
}

constexpr double kMinBlockWork = 2e6;  // multiply-adds; OpenBLAS's small path stops at 10⁶
constexpr int64_t kMaxBlocks = 8;      // work for up to 8 cores
constexpr int64_t kMinBlockSide = 1024;  // columns (or rows) of C per block, beyond two blocks
constexpr int64_t kBlockAlign = 16;    // block edges on whole register tiles

}  // namespace

// Up to kMaxBlocks ranges of [0, side), about kMinBlockWork of `work` each and none with half
// of it or less, edges on whole tiles where that leaves the last block enough; one range when
// the product is too small to cut. Two blocks where the work allows, as on two cores.
std::vector<std::pair<int64_t, int64_t>> gemm_blocks(int64_t side, double work) {
  // Every block packs the operand shared by all blocks again, so more than two blocks only
  // where each block is kMinBlockSide wide or more (that packing is then a few % of its work).
  const auto wanted = int64_t(std::ceil(work / kMinBlockWork));
  const int64_t widest_cut = std::max<int64_t>(2, side / kMinBlockSide);
  int64_t parts = std::max<int64_t>(1, std::min<int64_t>({kMaxBlocks, side, wanted, widest_cut}));
  // Block edges on whole tiles unless that starves the last block.
  int64_t step = (side + parts * kBlockAlign - 1) / (parts * kBlockAlign) * kBlockAlign;
  auto smallest_block_work = [&] { return double(side - (parts - 1) * step) / double(side) * work; };
  if (parts > 1 && smallest_block_work() <= kMinBlockWork / 2) step = (side + parts - 1) / parts;
  if (parts > 1 && smallest_block_work() <= kMinBlockWork / 2) parts = 1;
  if (parts == 1) return {{0, side}};
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t lo = std::min(side, p * step), hi = std::min(side, lo + step);
    if (lo < hi) out.emplace_back(lo, hi);
  }
  return out;
}

namespace {

#if CBST_HAVE_OPENBLAS
// One OpenBLAS call on rows [i0, i1) and columns [j0, j1) of C.
template <class T>
void openblas_block(const GemmArgs& g, const T* A, const T* B, T* C, int64_t i0, int64_t i1,
                    int64_t j0, int64_t j1) {
  const auto ta = g.trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = g.trans_b ? CblasTrans : CblasNoTrans;
  const T* a = A + (g.trans_a ? i0 : i0 * g.lda);
  const T* b = B + (g.trans_b ? j0 * g.ldb : j0);
  T* c = C + i0 * g.ldc + j0;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, int(i1 - i0), int(j1 - j0), int(g.k), float(g.alpha), a, int(g.lda), b,
                int(g.ldb), float(g.beta), c, int(g.ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, int(i1 - i0), int(j1 - j0), int(g.k), g.alpha, a, int(g.lda), b,
                int(g.ldb), g.beta, c, int(g.ldc));
}

template <class T>
void gemm_openblas_typed(const GemmArgs& g) {
  static std::once_flag single;
  std::call_once(single, [] { openblas_set_num_threads(1); });
  // Split the longer side of C.
  const bool by_cols = g.n >= g.m;
  const int64_t side = by_cols ? g.n : g.m;
  const std::vector<std::pair<int64_t, int64_t>> blocks =
      g.whole ? std::vector<std::pair<int64_t, int64_t>>{{0, side}}
              : gemm_blocks(side, double(g.m) * double(g.n) * double(g.k));
  const int64_t team = omp_in_parallel() ? 1 : std::min<int64_t>(omp_get_max_threads(), int64_t(blocks.size()));
  for (int64_t b = 0; b < g.batch; ++b) {
    const T* A = static_cast<const T*>(g.a) + b * g.stride_a;
    const T* B = static_cast<const T*>(g.b) + b * g.stride_b;
    T* C = static_cast<T*>(g.c) + b * g.stride_c;
    if (blocks.size() == 1 || g.m == 0 || g.n == 0) {
      openblas_block(g, A, B, C, 0, g.m, 0, g.n);
      continue;
    }
#pragma omp parallel for schedule(static) num_threads(int(team)) if (team > 1)
    for (size_t p = 0; p < blocks.size(); ++p) {
      const auto [lo, hi] = blocks[p];
      if (by_cols) openblas_block(g, A, B, C, 0, g.m, lo, hi);
      else openblas_block(g, A, B, C, lo, hi, 0, g.n);
    }
  }
}

void gemm_openblas(const GemmArgs& g) {
  if (g.dtype == DType::f32) gemm_openblas_typed<float>(g);
  else gemm_openblas_typed<double>(g);
}
#endif

// The elements an operand's GEMM reads, widened from bf16 to f32 (exact), at the same offsets.
std::vector<float> widen_operand(const void* x, bool trans, int64_t rows, int64_t cols, int64_t ld,
                                 int64_t batch, int64_t stride) {
  const int64_t r = trans ? cols : rows, c = trans ? rows : cols;  // as stored
  const int64_t span = r == 0 || c == 0 ? 0 : (batch - 1) * stride + (r - 1) * ld + c;
  std::vector<float> out(static_cast<size_t>(span));
  const bf16* in = static_cast<const bf16*>(x);
#pragma omp parallel for schedule(static) if (span > (int64_t(1) << 16))
  for (int64_t i = 0; i < span; ++i) out[size_t(i)] = float(in[i]);
  return out;
}

// bf16 A and B, f32 C: the operands widened to f32, then the f32 GEMM. Every product of two
// bf16 values is exact in f32, so this is a bf16 tensor-core GEMM with f32 accumulation up
// to the order of the sums.
void gemm_bf16(const GemmArgs& g) {
  const std::vector<float> a = widen_operand(g.a, g.trans_a, g.m, g.k, g.lda, g.batch, g.stride_a);
  const std::vector<float> b = widen_operand(g.b, g.trans_b, g.k, g.n, g.ldb, g.batch, g.stride_b);
  GemmArgs f = g;
  f.a = a.data();
  f.b = b.data();
  f.dtype = DType::f32;
  gemm(f);
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.dtype == DType::bf16) return gemm_bf16(g);
  CBST_CHECK(g.dtype == DType::f32 || g.dtype == DType::f64, "gemm: f32, f64 or bf16 only, got ",
             dtype_name(g.dtype));
  const CpuGemmImpl impl = g_impl.load();
#if CBST_HAVE_OPENBLAS
  if (impl != CpuGemmImpl::blocked) {
    gemm_openblas(g);
    return;
  }
#else
  CBST_CHECK(impl != CpuGemmImpl::openblas, "gemm: OpenBLAS was requested but this build has "
             "none; install libopenblas-dev and reconfigure");
#endif
  if (g.dtype == DType::f32) gemm_blocked<float>(g);
  else gemm_blocked<double>(g);
}

}  // namespace cpu
}  // namespace cbst::kern
