// The one CPU-vs-CUDA (and reference-vs-result) comparison for the whole test suite.
//
// expect_close(name, got, ref, tol) compares element by element with
//   |got − ref| ≤ atol + rtol·|ref|
// and reports max abs error, max rel error and the share of the tolerance used by the worst
// element ("how close it came to failing"), plus the first 5 mismatches. Tensors may live on
// any device and have any float or integer dtype (compared in double); shapes must match.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "engine/cuda_context.h"
#include "engine/tensor.h"

namespace cbst::testing {

struct Tolerance {
  double atol = 1e-6;
  double rtol = 1e-5;
};

::testing::AssertionResult close_result(const std::string& name, const Tensor& got,
                                        const Tensor& ref, Tolerance tol);

// Element-for-element equality (shapes too), on any device and dtype.
::testing::AssertionResult identical(const Tensor& got, const Tensor& ref);

// The message of the cbst::Error that `f` throws; empty when it throws none.
std::string error_of(const std::function<void()>& f);

// Skips the calling test (GTEST_SKIP) when no CUDA device is usable.
#define CBST_REQUIRE_CUDA()                                                     \
  do {                                                                          \
    if (!::cbst::cuda_available()) GTEST_SKIP() << "no CUDA device available";  \
  } while (0)

}  // namespace cbst::testing

#define CBST_EXPECT_CLOSE(name, got, ref, ...) \
  EXPECT_TRUE(::cbst::testing::close_result(name, got, ref, ::cbst::testing::Tolerance{__VA_ARGS__}))
#define CBST_ASSERT_CLOSE(name, got, ref, ...) \
  ASSERT_TRUE(::cbst::testing::close_result(name, got, ref, ::cbst::testing::Tolerance{__VA_ARGS__}))
