// Device dispatch for op front-ends: CBST_DISPATCH(op_name, device, fn, args...) calls
// kern::cpu::fn or kern::cuda::fn. Without the CUDA backend a CUDA tensor gets a clear error
// naming the op; there is never a silent fallback to the CPU.
#pragma once

#include "engine/check.h"
#include "engine/dtype.h"

namespace cbst {
[[noreturn]] void throw_no_cuda_build(const char* op);
// Sets the current CUDA device and, with CBST_SYNC_DEBUG, synchronises after the op.
void cuda_op_begin(Device d);
void cuda_op_end(const char* op);
}  // namespace cbst

#if CBST_WITH_CUDA
#define CBST_DISPATCH(op, device, fn, ...)          \
  do {                                              \
    if ((device).is_cuda()) {                       \
      ::cbst::cuda_op_begin(device);                \
      ::cbst::kern::cuda::fn(__VA_ARGS__);          \
      ::cbst::cuda_op_end(op);                      \
    } else {                                        \
      ::cbst::kern::cpu::fn(__VA_ARGS__);           \
    }                                               \
  } while (0)
#else
#define CBST_DISPATCH(op, device, fn, ...)          \
  do {                                              \
    if ((device).is_cuda()) ::cbst::throw_no_cuda_build(op); \
    ::cbst::kern::cpu::fn(__VA_ARGS__);             \
  } while (0)
#endif

// Type dispatch inside kernels: runs the body with `scalar_t` bound to the dtype's C++ type.
#define CBST_DTYPE_CASE(dt, T, ...) \
  case dt: {                        \
    using scalar_t = T;             \
    __VA_ARGS__();                  \
    break;                          \
  }
// The cases of the arithmetic dtypes, shared by the two dispatches below.
#define CBST_DTYPE_CASES_ARITHMETIC(...)                                            \
  CBST_DTYPE_CASE(::cbst::DType::f32, float, __VA_ARGS__)                           \
  CBST_DTYPE_CASE(::cbst::DType::f64, double, __VA_ARGS__)                          \
  CBST_DTYPE_CASE(::cbst::DType::u8, uint8_t, __VA_ARGS__)                          \
  CBST_DTYPE_CASE(::cbst::DType::i32, int32_t, __VA_ARGS__)                         \
  CBST_DTYPE_CASE(::cbst::DType::i64, int64_t, __VA_ARGS__)
#define CBST_DISPATCH_ALL_TYPES(dtype, name, ...)                                    \
  switch (dtype) {                                                                   \
    CBST_DTYPE_CASES_ARITHMETIC(__VA_ARGS__)                                         \
    default: CBST_THROW(name, ": unsupported dtype ", ::cbst::dtype_name(dtype),     \
                        ::cbst::dtype_hint(dtype));                                  \
  }
// The copy and fill kernels also move bf16 (a storage type: no arithmetic on it).
#define CBST_DISPATCH_STORAGE_TYPES(dtype, name, ...)                                \
  switch (dtype) {                                                                   \
    CBST_DTYPE_CASES_ARITHMETIC(__VA_ARGS__)                                         \
    CBST_DTYPE_CASE(::cbst::DType::bf16, ::cbst::bf16, __VA_ARGS__)                  \
    default: CBST_THROW(name, ": unsupported dtype ", ::cbst::dtype_name(dtype));    \
  }
#define CBST_DISPATCH_FLOAT_TYPES(dtype, name, ...)                                  \
  switch (dtype) {                                                                   \
    CBST_DTYPE_CASE(::cbst::DType::f32, float, __VA_ARGS__)                          \
    CBST_DTYPE_CASE(::cbst::DType::f64, double, __VA_ARGS__)                         \
    default: CBST_THROW(name, ": needs a floating-point tensor (f32 or f64), got ",  \
                        ::cbst::dtype_name(dtype), ::cbst::dtype_hint(dtype));       \
  }
