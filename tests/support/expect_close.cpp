#include "tests/support/expect_close.h"

#include <cmath>
#include <cstdio>

#include "engine/autograd.h"

namespace cbst::testing {

::testing::AssertionResult close_result(const std::string& name, const Tensor& got,
                                        const Tensor& ref, Tolerance tol) {
  if (!got.defined() || !ref.defined())
    return ::testing::AssertionFailure() << name << ": undefined tensor";
  if (got.shape() != ref.shape())
    return ::testing::AssertionFailure() << name << ": shapes differ: got " << shape_str(got.shape())
                                         << ", expected " << shape_str(ref.shape());
  NoGradGuard guard;
  const std::vector<double> g = got.detach().to(DType::f64).to_vector<double>();
  const std::vector<double> r = ref.detach().to(DType::f64).to_vector<double>();
  double max_abs = 0, max_rel = 0, worst = 0;
  int64_t bad = 0;
  std::string mismatches;
  char line[256];
  for (size_t i = 0; i < g.size(); ++i) {
    const bool both_nan = std::isnan(g[i]) && std::isnan(r[i]);
    const double err = both_nan ? 0.0 : std::abs(g[i] - r[i]);
    const double allowed = tol.atol + tol.rtol * std::abs(r[i]);
    const double used = err == 0.0 ? 0.0 : err / allowed;
    max_abs = std::max(max_abs, err);
    if (r[i] != 0) max_rel = std::max(max_rel, err / std::abs(r[i]));
    if (!(used <= worst)) worst = used;
    if (!(used <= 1.0)) {
      if (bad++ < 5) {
        std::snprintf(line, sizeof line, "\n  [%zu] got %.9g, expected %.9g (err %.3g > %.3g)", i,
                      g[i], r[i], err, allowed);
        mismatches += line;
      }
    }
  }
  std::snprintf(line, sizeof line,
                "%s: %zu elements, max abs err %.3g, max rel err %.3g, worst used %.1f%% of "
                "tolerance (atol %.1g, rtol %.1g)",
                name.c_str(), g.size(), max_abs, max_rel, 100.0 * worst, tol.atol, tol.rtol);
  if (bad == 0) {
    std::printf("[ close    ] %s\n", line);
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << line << "; " << bad << " mismatches:" << mismatches;
}

::testing::AssertionResult identical(const Tensor& got, const Tensor& ref) {
  return close_result("identical", got, ref, {0.0, 0.0});
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace cbst::testing
