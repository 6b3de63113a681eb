// CPU row reductions: src is (rows, cols) contiguous. Each row is reduced sequentially by
// one thread (sums accumulate in double), so results do not depend on the thread count.
#include <limits>

#include "engine/dispatch.h"
#include "engine/kernel_math.h"

namespace cbst::kern::cpu {

namespace {

template <class scalar_t>
void reduce_rows_typed(ReduceOp op, void* dst, const void* src, int64_t rows, int64_t cols) {
    const scalar_t* s = static_cast<const scalar_t*>(src);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* row = s + r * cols;
      switch (op) {
        case ReduceOp::sum: {
          double acc = 0.0;
          for (int64_t c = 0; c < cols; ++c) acc += double(row[c]);
          static_cast<scalar_t*>(dst)[r] = scalar_t(acc);
          break;
        }
        case ReduceOp::max:
        case ReduceOp::min: {
          scalar_t best = row[0];
          for (int64_t c = 1; c < cols; ++c) {
            if (is_nan(best)) break;  // NaN propagates, as in torch.amax
            const scalar_t v = row[c];
            if (is_nan(v) || (op == ReduceOp::max ? v > best : v < best)) best = v;
          }
          static_cast<scalar_t*>(dst)[r] = best;
          break;
        }
        case ReduceOp::argmax: {
          int64_t best = 0;
          for (int64_t c = 1; c < cols; ++c) {
            if (is_nan(row[best])) break;
            if (is_nan(row[c]) || row[c] > row[best]) best = c;  // first maximum wins
          }
          static_cast<int64_t*>(dst)[r] = best;
          break;
        }
      }
    }
}

}  // namespace

void reduce_rows(ReduceOp op, void* dst, const void* src, int64_t rows, int64_t cols,
                 DType dtype) {
  CBST_DISPATCH_ALL_TYPES(dtype, "reduce",
                          [&] { reduce_rows_typed<scalar_t>(op, dst, src, rows, cols); });
}

}  // namespace cbst::kern::cpu
