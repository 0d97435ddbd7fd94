// Helpers for the finite-difference checks of the backward kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace difftx::test {

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// Max over coordinates of |analytic - numeric| / (max |numeric| + 1e-3), numeric being the central
// difference (L(x + h e_i) - L(x - h e_i)) / 2h.
inline double fd_error(std::vector<float>& x, const std::vector<float>& analytic, const std::function<double()>& loss,
                       float h = 1e-2f) {
  double max_err = 0, max_ref = 1e-3;
  for (size_t i = 0; i < x.size(); ++i) {
    const float saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2.0 * h);
    max_err = std::max(max_err, std::abs(numeric - analytic[i]));
    max_ref = std::max(max_ref, std::abs(numeric));
  }
  return max_err / max_ref;
}

}  // namespace difftx::test
