// Helpers for the finite-difference checks of the backward kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "kernels/op_types.h"

namespace difftx::test {

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Diff-head i reads q heads 2i and 2i+1 (the paper's adjacent pairs), the key heads of their
// groups, and value_heads value heads starting at its group's.
inline DiffHeadMap pair_map(int64_t H, int64_t KV, int64_t value_heads) {
  DiffHeadMap map;
  map.value_heads = value_heads;
  const int64_t group = H / KV;
  for (int32_t i = 0; i < H / 2; ++i) {
    map.q1.push_back(2 * i);
    map.q2.push_back(2 * i + 1);
    map.k1.push_back(static_cast<int32_t>(2 * i / group));
    map.k2.push_back(static_cast<int32_t>((2 * i + 1) / group));
    for (int64_t h = 0; h < value_heads; ++h) map.v.push_back(static_cast<int32_t>((2 * i / group + h) % KV));
  }
  return map;
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
