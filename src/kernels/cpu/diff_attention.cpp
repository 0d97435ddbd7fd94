#include "kernels/cpu/diff_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "kernels/cpu/attention_tiles.h"

namespace difftx {

namespace {

constexpr int64_t kQueryTile = 32;

}  // namespace

void diff_attention_forward(const DiffAttentionShape& sh, const DiffHeadMap& map, const DiffAttentionParams& p,
                            const float* q, int64_t q_stride, const float* k, const float* v, const int32_t* segments,
                            float* out, int64_t out_stride, const DiffAttentionStats* stats) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, d = sh.head_dim;
  const int64_t Hd = map.n_diff_heads(), nv = map.value_heads, w = nv * d;
  const int64_t past = S - T;
  const int64_t tiles = (T + kQueryTile - 1) / kQueryTile;

#pragma omp parallel
  {
    // Per thread: both maps' scores for one query tile against every key it may see, and the
    // two unnormalised outputs. O(tile * (S + w)) floats, never T x S.
    std::vector<float> s1(static_cast<size_t>(kQueryTile * S)), s2(s1.size());
    std::vector<float> acc1(static_cast<size_t>(kQueryTile * w)), acc2(acc1.size()), row(static_cast<size_t>(w));
    std::vector<float> m1(kQueryTile), l1(kQueryTile), m2(kQueryTile), l2(kQueryTile);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < Hd; ++i) {
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t t0 = tile * kQueryTile;
          const int64_t rows = std::min(kQueryTile, T - t0);
          const int64_t first_i = past + t0, last_i = past + t0 + rows - 1;  // cache indices of the rows
          // Keys any row of this tile may see: [lo, last_i].
          const int64_t lo = sh.window > 0 ? std::max<int64_t>(0, first_i - sh.window + 1) : 0;
          const int64_t n = last_i + 1 - lo;
          const int32_t* seg = segments ? segments + b * sh.kv_capacity : nullptr;
          const float* q1 = q + (b * T + t0) * q_stride + map.q1[i] * d;
          const float* q2 = q + (b * T + t0) * q_stride + map.q2[i] * d;
          const float* k1 = k + ((b * sh.n_k_heads + map.k1[i]) * sh.kv_capacity + lo) * d;
          const float* k2 = k + ((b * sh.n_k_heads + map.k2[i]) * sh.kv_capacity + lo) * d;
          tiles::scores(q1, q_stride, k1, d, rows, n, d, p.scale, s1.data());
          tiles::scores(q2, q_stride, k2, d, rows, n, d, p.scale, s2.data());
          tiles::mask_scores(s1.data(), rows, n, lo, first_i, sh.window, seg);
          tiles::mask_scores(s2.data(), rows, n, lo, first_i, sh.window, seg);
          for (int64_t r = 0; r < rows; ++r) {
            std::tie(m1[r], l1[r]) = tiles::softmax_numerators(s1.data() + r * n, n);
            std::tie(m2[r], l2[r]) = tiles::softmax_numerators(s2.data() + r * n, n);
          }
          // Unnormalised A = exp(S - m) V per value head; each value head is read by both maps.
          std::fill(acc1.begin(), acc1.begin() + rows * w, 0.0f);
          std::fill(acc2.begin(), acc2.begin() + rows * w, 0.0f);
          for (int64_t h = 0; h < nv; ++h) {
            const float* vt = v + ((b * sh.n_v_heads + map.v[i * nv + h]) * sh.kv_capacity + lo) * d;
            tiles::weighted_rows(s1.data(), rows, n, vt, d, d, acc1.data() + h * d, w);
            tiles::weighted_rows(s2.data(), rows, n, vt, d, d, acc2.data() + h * d, w);
          }

          // out = out_scale * norm(A1 - lambda * A2)
          for (int64_t r = 0; r < rows; ++r) {
            const float inv1 = l1[r] > 0.0f ? 1.0f / l1[r] : 0.0f;
            const float inv2 = l2[r] > 0.0f ? 1.0f / l2[r] : 0.0f;
            const float* a1 = acc1.data() + r * w;
            const float* a2 = acc2.data() + r * w;
            for (int64_t x = 0; x < w; ++x) row[x] = a1[x] * inv1 - p.lambda * (a2[x] * inv2);
            float scale = p.out_scale;
            if (p.norm) {
              float ss = 0.0f;
              for (int64_t x = 0; x < w; ++x) ss += row[x] * row[x];
              scale *= 1.0f / std::sqrt(ss / static_cast<float>(w) + p.norm_eps);
            }
            float* o = out + (b * T + t0 + r) * out_stride + i * w;
            for (int64_t x = 0; x < w; ++x) o[x] = row[x] * scale * (p.norm_weight ? p.norm_weight[x] : 1.0f);
            if (stats != nullptr && stats->a1 != nullptr) {
              float* o1 = stats->a1 + ((b * T + t0 + r) * Hd + i) * w;
              float* o2 = stats->a2 + ((b * T + t0 + r) * Hd + i) * w;
              for (int64_t x = 0; x < w; ++x) {
                o1[x] = a1[x] * inv1;
                o2[x] = a2[x] * inv2;
              }
            }
            if (stats != nullptr && stats->m1 != nullptr) {
              const int64_t at = (b * Hd + i) * T + t0 + r;
              stats->m1[at] = m1[r];
              stats->l1[at] = l1[r];
              stats->m2[at] = m2[r];
              stats->l2[at] = l2[r];
            }
          }
        }
      }
    }
  }
}

}  // namespace difftx
