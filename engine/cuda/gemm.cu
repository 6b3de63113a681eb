// cuBLAS GEMM for row-major operands. cuBLAS is column-major, so C = op(A)·op(B) is computed
// as Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands and keep each transpose flag.
#include "engine/cuda/context.h"
#include "engine/kernels.h"

namespace cbst::kern::cuda {

void gemm(const GemmArgs& g) {
  CBST_CHECK(g.dtype == DType::f32 || g.dtype == DType::f64 || g.dtype == DType::bf16,
             "gemm: f32, f64 or bf16 only, got ", dtype_name(g.dtype));
  cublasHandle_t h = cublas_handle();
  const cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = int(g.m), n = int(g.n), k = int(g.k);
  if (g.dtype == DType::bf16) {
    // bf16 A and B on tensor cores, f32 accumulation (CUBLAS_COMPUTE_32F) and an f32 C.
    const float alpha = float(g.alpha), beta = float(g.beta);
    CBST_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        h, tb, ta, n, m, k, &alpha, g.b, CUDA_R_16BF, int(g.ldb), g.stride_b, g.a, CUDA_R_16BF,
        int(g.lda), g.stride_a, &beta, g.c, CUDA_R_32F, int(g.ldc), g.stride_c, int(g.batch),
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else if (g.dtype == DType::f32) {
    const float alpha = float(g.alpha), beta = float(g.beta);
    CBST_CUBLAS_CHECK(cublasSgemmStridedBatched(
        h, tb, ta, n, m, k, &alpha, static_cast<const float*>(g.b), int(g.ldb), g.stride_b,
        static_cast<const float*>(g.a), int(g.lda), g.stride_a, &beta,
        static_cast<float*>(g.c), int(g.ldc), g.stride_c, int(g.batch)));
  } else {
    const double alpha = g.alpha, beta = g.beta;
    CBST_CUBLAS_CHECK(cublasDgemmStridedBatched(
        h, tb, ta, n, m, k, &alpha, static_cast<const double*>(g.b), int(g.ldb), g.stride_b,
        static_cast<const double*>(g.a), int(g.lda), g.stride_a, &beta,
        static_cast<double*>(g.c), int(g.ldc), g.stride_c, int(g.batch)));
  }
}

}  // namespace cbst::kern::cuda
