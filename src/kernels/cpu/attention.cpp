#include "kernels/cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace difftx {

namespace {

constexpr int64_t kQueryTile = 32;

}  // namespace

void attention_forward(const AttentionShape& sh, const float* q, int64_t q_stride, const float* k, const float* v,
                       const int32_t* segments, float scale, float* out, int64_t out_stride, float* stats_m,
                       float* stats_l) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, H = sh.n_heads, d = sh.head_dim;
  const int64_t group = H / sh.n_kv_heads;
  const int64_t past = S - T;
  const int64_t tiles = (T + kQueryTile - 1) / kQueryTile;
  const float neg_inf = -std::numeric_limits<float>::infinity();

#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(kQueryTile * S));
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t t0 = tile * kQueryTile;
          const int64_t rows = std::min(kQueryTile, T - t0);
          const int64_t kvh = h / group;
          // Keys any row of this tile may see: [lo, hi).
          const int64_t hi = past + t0 + rows;
          const int64_t lo = sh.window > 0 ? std::max<int64_t>(0, past + t0 - sh.window + 1) : 0;
          const int64_t n = hi - lo;
          const float* qt = q + (b * T + t0) * q_stride + h * d;
          const float* kt = k + ((b * sh.n_kv_heads + kvh) * sh.kv_capacity + lo) * d;
          const float* vt = v + ((b * sh.n_kv_heads + kvh) * sh.kv_capacity + lo) * d;
          float* ot = out + (b * T + t0) * out_stride + h * d;
          const int32_t* seg = segments ? segments + b * sh.kv_capacity : nullptr;

          // scores[rows, n] = scale * q_tile · k[lo:hi]^T
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, scale, qt, q_stride, kt, d, 0.0f,
                      scores.data(), n);
          for (int64_t r = 0; r < rows; ++r) {
            float* row = scores.data() + r * n;
            const int64_t i = past + t0 + r;
            const int64_t first = sh.window > 0 ? std::max<int64_t>(0, i - sh.window + 1) : 0;
            float mx = neg_inf;
            for (int64_t j = 0; j < n; ++j) {
              const int64_t s = lo + j;
              bool visible = s <= i && s >= first && (seg == nullptr || (seg[s] != 0 && seg[s] == seg[i]));
              if (!visible) row[j] = neg_inf;
              mx = std::max(mx, row[j]);
            }
            const int64_t at = (b * H + h) * T + t0 + r;
            if (mx == neg_inf) {  // nothing visible: zero output row
              std::fill(row, row + n, 0.0f);
              if (stats_m != nullptr) {
                stats_m[at] = neg_inf;
                stats_l[at] = 0.0f;
              }
              continue;
            }
            float sum = 0.0f;
            for (int64_t j = 0; j < n; ++j) {
              float e = std::exp(row[j] - mx);
              row[j] = e;
              sum += e;
            }
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j < n; ++j) row[j] *= inv;
            if (stats_m != nullptr) {
              stats_m[at] = mx;
              stats_l[at] = sum;
            }
          }
          // out_tile[rows, d] = P · v[lo:hi]
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n, 1.0f, scores.data(), n, vt, d, 0.0f, ot,
                      out_stride);
        }
      }
    }
  }
}

}  // namespace difftx
