#include "kernels/cpu/diff_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/attention_tiles.h"

namespace difftx {

namespace {

constexpr int64_t kQueryTile = 32;
constexpr int64_t kKeyTile = 256;

// Running state of one softmax map over a query tile (flash-style online softmax).
struct OnlineSoftmax {
  std::vector<float> scores;  // [rows, kKeyTile]
  std::vector<float> acc;     // [rows, w]: sum_j exp(s_j - m) v_j
  std::vector<float> m, l;    // [rows]

  void reset(int64_t rows, int64_t w) {
    scores.resize(static_cast<size_t>(kQueryTile * kKeyTile));
    acc.assign(static_cast<size_t>(rows * w), 0.0f);
    m.assign(static_cast<size_t>(rows), tiles::kNegInf);
    l.assign(static_cast<size_t>(rows), 0.0f);
  }

  // Folds in one key tile whose masked scores are in `scores` [rows, n]: turns them into
  // exp(s - m_new), rescales the running sums. Returns false if the whole tile is masked.
  bool update(int64_t rows, int64_t n, int64_t w) {
    bool any = false;
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scores.data() + r * n;
      const float m_new = std::max(m[r], vec::max_of(s, n));
      if (m_new == tiles::kNegInf) {  // nothing visible yet in this row
        std::fill(s, s + n, 0.0f);
        continue;
      }
      any = true;
      const float alpha = m[r] == tiles::kNegInf ? 0.0f : std::exp(m[r] - m_new);
      l[r] = l[r] * alpha + vec::exp_shifted_sum(s, n, m_new);
      m[r] = m_new;
      if (alpha != 1.0f) {
        float* a = acc.data() + r * w;
#pragma omp simd
        for (int64_t x = 0; x < w; ++x) a[x] *= alpha;
      }
    }
    return any;
  }
};

}  // namespace

void diff_attention_forward(const DiffAttentionShape& sh, const DiffHeadMap& map, const DiffAttentionParams& p,
                            const float* q, int64_t q_stride, const float* k, const float* v, const int32_t* segments,
                            float* out, int64_t out_stride, const DiffAttentionStats* stats) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, d = sh.head_dim;
  const int64_t Hd = map.n_diff_heads(), nv = map.value_heads, w = nv * d;
  const int64_t past = S - T;
  const int64_t tiles = (T + kQueryTile - 1) / kQueryTile;
  const tiles::TransposedKeys kt(k, B, sh.n_k_heads, sh.kv_capacity, S, d, T);

#pragma omp parallel
  {
    OnlineSoftmax c1, c2;
    std::vector<float> row(static_cast<size_t>(w));
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < Hd; ++i) {
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t t0 = tile * kQueryTile;
          const int64_t rows = std::min(kQueryTile, T - t0);
          const int64_t first_i = past + t0, last_i = past + t0 + rows - 1;  // cache indices of the rows
          const int64_t lo = sh.window > 0 ? std::max<int64_t>(0, first_i - sh.window + 1) : 0;
          const int32_t* seg = segments ? segments + b * sh.kv_capacity : nullptr;
          const float* q1 = q + (b * T + t0) * q_stride + map.q1[i] * d;
          const float* q2 = q + (b * T + t0) * q_stride + map.q2[i] * d;
          const float* k1 = k + (b * sh.n_k_heads + map.k1[i]) * sh.kv_capacity * d;
          const float* k2 = k + (b * sh.n_k_heads + map.k2[i]) * sh.kv_capacity * d;
          c1.reset(rows, w);
          c2.reset(rows, w);

          for (int64_t s0 = lo; s0 <= last_i; s0 += kKeyTile) {
            const int64_t n = std::min(kKeyTile, last_i + 1 - s0);
            // Scores of both maps for this key tile: [rows, n], masked where keys are hidden.
            tiles::scores(q1, q_stride, k1 + s0 * d, d, kt.at(b, map.k1[i], s0), kt.stride(), rows, n, d, p.scale,
                          c1.scores.data());
            tiles::scores(q2, q_stride, k2 + s0 * d, d, kt.at(b, map.k2[i], s0), kt.stride(), rows, n, d, p.scale,
                          c2.scores.data());
            tiles::mask_scores(c1.scores.data(), rows, n, s0, first_i, sh.window, seg);
            tiles::mask_scores(c2.scores.data(), rows, n, s0, first_i, sh.window, seg);
            const bool any1 = c1.update(rows, n, w);
            const bool any2 = c2.update(rows, n, w);
            if (!any1 && !any2) continue;
            // Each value tile serves both maps while it is in cache: acc += P · V[s0:s0+n] per value head.
            for (int64_t h = 0; h < nv; ++h) {
              const float* vt = v + ((b * sh.n_v_heads + map.v[i * nv + h]) * sh.kv_capacity + s0) * d;
              tiles::weighted_rows(c1.scores.data(), rows, n, vt, d, d, c1.acc.data() + h * d, w);
              tiles::weighted_rows(c2.scores.data(), rows, n, vt, d, d, c2.acc.data() + h * d, w);
            }
          }

          // out = out_scale * norm(A1 - lambda * A2)
          for (int64_t r = 0; r < rows; ++r) {
            const float inv1 = c1.l[r] > 0.0f ? 1.0f / c1.l[r] : 0.0f;
            const float inv2 = c2.l[r] > 0.0f ? 1.0f / c2.l[r] : 0.0f;
            const float* a1 = c1.acc.data() + r * w;
            const float* a2 = c2.acc.data() + r * w;
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
              stats->m1[at] = c1.m[r];
              stats->l1[at] = c1.l[r];
              stats->m2[at] = c2.m[r];
              stats->l2[at] = c2.l[r];
            }
          }
        }
      }
    }
  }
}

}  // namespace difftx
