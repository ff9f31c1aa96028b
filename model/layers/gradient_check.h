// Test utility: numerical (central finite difference) gradient checks, in the manner of
// Caffe's GradientChecker. Header-only; used by the *_test.cc files.
#ifndef MOBILENET_MODEL_LAYERS_GRADIENT_CHECK_H_
#define MOBILENET_MODEL_LAYERS_GRADIENT_CHECK_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mobilenet {

// Checks `analytic` (d loss / d x, already computed) against
// (loss(x + h) - loss(x - h)) / 2h for up to `max_checks` elements of x, spread evenly.
// `loss` must recompute the scalar loss from the current contents of x (computed in
// double where possible). Relative error: |a - n| / max(|a| + |n|, floor).
inline void ExpectGradientsMatch(const std::string& what, std::vector<float>& x,
                                 const std::vector<float>& analytic,
                                 const std::function<double()>& loss, double step = 1e-2,
                                 double tolerance = 2e-2, int max_checks = 200,
                                 double floor = 1e-3) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t stride = std::max<int64_t>(1, n / max_checks);
  int failures = 0;
  for (int64_t i = 0; i < n; i += stride) {
    const float saved = x[i];
    x[i] = saved + static_cast<float>(step);
    const double plus = loss();
    x[i] = saved - static_cast<float>(step);
    const double minus = loss();
    x[i] = saved;
    const double numeric = (plus - minus) / (2 * step);
    const double a = analytic[i];
    const double rel = std::fabs(a - numeric) / std::max(std::fabs(a) + std::fabs(numeric), floor);
    if (rel > tolerance && ++failures <= 5) {
      ADD_FAILURE() << what << "[" << i << "]: analytic " << a << " numeric " << numeric
                    << " relative error " << rel;
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " elements off";
}

}  // namespace mobilenet

#endif  // MOBILENET_MODEL_LAYERS_GRADIENT_CHECK_H_
