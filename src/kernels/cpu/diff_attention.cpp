#include "kernels/cpu/diff_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cpu/attention_tiles.h"
#include "kernels/cpu/attention_tiles_bf16.h"

namespace difftx {

namespace {

// Query rows per tile: six full register blocks of tile_product.h (32 left a block of 2 rows,
// whose 8 FMAs per step wait on 6 loads; bench/NOTES.md, change 20).
constexpr int64_t kQueryTile = 36;
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

// o[0:w] = out_scale * norm(a1 * inv1 - lambda * a2 * inv2), the differential output of one
// query row (spec §2-§4); row is scratch of w floats.
void finish_row(const DiffAttentionParams& p, const float* a1, float inv1, const float* a2, float inv2, int64_t w,
                float* row, float* o) {
  for (int64_t x = 0; x < w; ++x) row[x] = a1[x] * inv1 - p.lambda * (a2[x] * inv2);
  float scale = p.out_scale;
  if (p.norm) {
    float ss = 0.0f;
    for (int64_t x = 0; x < w; ++x) ss += row[x] * row[x];
    scale *= 1.0f / std::sqrt(ss / static_cast<float>(w) + p.norm_eps);
  }
  for (int64_t x = 0; x < w; ++x) o[x] = row[x] * scale * (p.norm_weight ? p.norm_weight[x] : 1.0f);
}

// Runs of consecutive diff-heads that read the same key and value heads and adjacent q heads
// (the heads of one GQA group in every layout of diff_layout.h): decoding scores them together.
std::vector<std::pair<int64_t, int64_t>> head_groups(const DiffHeadMap& map) {
  std::vector<std::pair<int64_t, int64_t>> groups;  // (first diff-head, count)
  const int64_t Hd = map.n_diff_heads(), nv = map.value_heads;
  for (int64_t i = 0; i < Hd; ++i) {
    if (!groups.empty()) {
      auto& [first, count] = groups.back();
      const int64_t j = first + count;  // == i
      bool same = map.k1[j] == map.k1[first] && map.k2[j] == map.k2[first] && map.q1[j] == map.q1[first] + count &&
                  map.q2[j] == map.q2[first] + count;
      for (int64_t h = 0; h < nv && same; ++h) same = map.v[j * nv + h] == map.v[first * nv + h];
      if (same) {
        ++count;
        continue;
      }
    }
    groups.emplace_back(i, 1);
  }
  return groups;
}

// One query per batch row (decoding): the diff-heads of a group share each loaded key and value,
// and the visible keys are split into chunks merged exactly per map (tiles::split_keys).
void diff_attention_decode(const AttentionShape& sh, const DiffHeadMap& map, const DiffAttentionParams& p,
                           const float* q, int64_t q_stride, const float* k, const float* v, const int32_t* segments,
                           float* out, int64_t out_stride) {
  const int64_t B = sh.batch, S = sh.kv_len, d = sh.head_dim, nv = map.value_heads, w = nv * d, past = S - 1;
  const int64_t lo = sh.window > 0 ? std::max<int64_t>(0, past - sh.window + 1) : 0;
  const auto groups = head_groups(map);
  const int64_t G = static_cast<int64_t>(groups.size());
  int64_t rows_max = 1;
  for (const auto& g : groups) rows_max = std::max(rows_max, g.second);
  const tiles::KeyChunks chunks = tiles::split_keys(S - lo, B * G, omp_get_max_threads());
  const int64_t items = B * G * chunks.count;
  // Per item and row: m and l of both maps, and both unnormalised outputs.
  std::vector<float> m1(static_cast<size_t>(items * rows_max)), l1(m1.size()), m2(m1.size()), l2(m1.size());
  std::vector<float> acc1(static_cast<size_t>(items * rows_max * w)), acc2(acc1.size());

#pragma omp parallel
  {
    std::vector<float> s1(static_cast<size_t>(rows_max * chunks.size)), s2(s1.size());
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t b = item / (G * chunks.count), gi = item / chunks.count % G, c = item % chunks.count;
      const auto [first, rows] = groups[gi];
      const int64_t s0 = lo + c * chunks.size, n = std::min(chunks.size, S - s0);
      const int64_t at = item * rows_max;
      std::fill(&acc1[at * w], &acc1[(at + rows) * w], 0.0f);
      std::fill(&acc2[at * w], &acc2[(at + rows) * w], 0.0f);
      if (n <= 0) {
        std::fill(&m1[at], &m1[at + rows], tiles::kNegInf);
        std::fill(&m2[at], &m2[at + rows], tiles::kNegInf);
        std::fill(&l1[at], &l1[at + rows], 0.0f);
        std::fill(&l2[at], &l2[at + rows], 0.0f);
        continue;
      }
      const int32_t* seg = segments ? segments + b * sh.kv_capacity : nullptr;
      const float* k1 = k + ((b * sh.n_k_heads + map.k1[first]) * sh.kv_capacity + s0) * d;
      const float* k2 = k + ((b * sh.n_k_heads + map.k2[first]) * sh.kv_capacity + s0) * d;
      tiles::scores(q + b * q_stride + map.q1[first] * d, d, k1, d, rows, n, d, p.scale, s1.data());
      tiles::scores(q + b * q_stride + map.q2[first] * d, d, k2, d, rows, n, d, p.scale, s2.data());
      for (int64_t r = 0; r < rows; ++r) {
        tiles::mask_scores(&s1[r * n], 1, n, s0, past, sh.window, seg);
        tiles::mask_scores(&s2[r * n], 1, n, s0, past, sh.window, seg);
        std::tie(m1[at + r], l1[at + r]) = tiles::softmax_numerators(&s1[r * n], n);
        std::tie(m2[at + r], l2[at + r]) = tiles::softmax_numerators(&s2[r * n], n);
      }
      for (int64_t h = 0; h < nv; ++h) {  // each value chunk serves both maps while it is in cache
        const float* vc = v + ((b * sh.n_v_heads + map.v[first * nv + h]) * sh.kv_capacity + s0) * d;
        tiles::weighted_rows(s1.data(), rows, n, vc, d, d, &acc1[at * w + h * d], w);
        tiles::weighted_rows(s2.data(), rows, n, vc, d, d, &acc2[at * w + h * d], w);
      }
    }
  }
  std::vector<float> a1(static_cast<size_t>(w)), a2(a1.size()), row(a1.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t gi = 0; gi < G; ++gi)
      for (int64_t r = 0; r < groups[gi].second; ++r) {
        const int64_t at = (b * G + gi) * chunks.count * rows_max + r;  // chunk 0 of this row
        const float sum1 = tiles::merge_key_chunks(&m1[at], &l1[at], rows_max, &acc1[at * w], rows_max * w,
                                                   chunks.count, w, a1.data());
        const float sum2 = tiles::merge_key_chunks(&m2[at], &l2[at], rows_max, &acc2[at * w], rows_max * w,
                                                   chunks.count, w, a2.data());
        finish_row(p, a1.data(), sum1 > 0.0f ? 1.0f / sum1 : 0.0f, a2.data(), sum2 > 0.0f ? 1.0f / sum2 : 0.0f, w,
                   row.data(), out + b * out_stride + (groups[gi].first + r) * w);
      }
}

}  // namespace

void diff_attention_forward(const AttentionShape& sh, const DiffHeadMap& map, const DiffAttentionParams& p,
                            const float* q, int64_t q_stride, const float* k, const float* v, const int32_t* segments,
                            float* out, int64_t out_stride, const DiffAttentionStats* stats,
                            TileProducts products) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, d = sh.head_dim;
  const int64_t Hd = map.n_diff_heads(), nv = map.value_heads, w = nv * d;
  const int64_t past = S - T;
  if (T == 1 && stats == nullptr)
    return diff_attention_decode(sh, map, p, q, q_stride, k, v, segments, out, out_stride);
  const int64_t tiles = (T + kQueryTile - 1) / kQueryTile;
  const bool bf16 = tiles::bf16::use_bf16_tiles(products, T);
  const tiles::TransposedKeys kt(k, B, sh.n_k_heads, sh.kv_capacity, S, d, bf16 ? 0 : T);
#if defined(__AVX512BF16__)
  const tiles::bf16::ForwardPanels panels(bf16, sh, k, v);
  const int64_t dp = tiles::bf16::pairs(d);
#endif

#pragma omp parallel
  {
    OnlineSoftmax c1, c2;
    std::vector<float> row(static_cast<size_t>(w));
    // bf16 operands: both maps' query tiles, then P's pairs (tiles::bf16).
    std::vector<uint32_t> q1_pairs, q2_pairs, p1_pairs, p2_pairs;
    if (bf16) {
      q1_pairs.resize(static_cast<size_t>(kQueryTile * d));
      q2_pairs.resize(q1_pairs.size());
      p1_pairs.resize(static_cast<size_t>(kQueryTile * kKeyTile));
      p2_pairs.resize(p1_pairs.size());
    }
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < Hd; ++i) {
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t t0 = tile * kQueryTile;
          const int64_t rows = std::min(kQueryTile, T - t0);
          const int64_t first_i = past + t0, last_i = past + t0 + rows - 1;  // cache indices of the rows
          int64_t lo = sh.window > 0 ? std::max<int64_t>(0, first_i - sh.window + 1) : 0;
          if (bf16) lo -= lo % 2;  // the value panels' pairs start at even positions (the extra key is masked)
          const int32_t* seg = segments ? segments + b * sh.kv_capacity : nullptr;
          const float* q1 = q + (b * T + t0) * q_stride + map.q1[i] * d;
          const float* q2 = q + (b * T + t0) * q_stride + map.q2[i] * d;
          const float* k1 = k + (b * sh.n_k_heads + map.k1[i]) * sh.kv_capacity * d;
          const float* k2 = k + (b * sh.n_k_heads + map.k2[i]) * sh.kv_capacity * d;
          c1.reset(rows, w);
          c2.reset(rows, w);
#if defined(__AVX512BF16__)
          if (bf16) {
            tiles::bf16::pack_rows(q1, q_stride, rows, d, q1_pairs.data(), dp);
            tiles::bf16::pack_rows(q2, q_stride, rows, d, q2_pairs.data(), dp);
          }
#endif

          for (int64_t s0 = lo; s0 <= last_i; s0 += kKeyTile) {
            const int64_t n = std::min(kKeyTile, last_i + 1 - s0);
            // Scores of both maps for this key tile: [rows, n], masked where keys are hidden.
#if defined(__AVX512BF16__)
            if (bf16) {
              tiles::bf16::scores(q1_pairs.data(), dp, panels.keys->along_d(b, map.k1[i], sh.n_k_heads, s0),
                                  panels.keys->stride_d(), rows, n, d, p.scale, c1.scores.data());
              tiles::bf16::scores(q2_pairs.data(), dp, panels.keys->along_d(b, map.k2[i], sh.n_k_heads, s0),
                                  panels.keys->stride_d(), rows, n, d, p.scale, c2.scores.data());
            } else
#endif
            {
              tiles::scores(q1, q_stride, k1 + s0 * d, d, kt.at(b, map.k1[i], s0), kt.stride(), rows, n, d, p.scale,
                            c1.scores.data());
              tiles::scores(q2, q_stride, k2 + s0 * d, d, kt.at(b, map.k2[i], s0), kt.stride(), rows, n, d, p.scale,
                            c2.scores.data());
            }
            tiles::mask_scores(c1.scores.data(), rows, n, s0, first_i, sh.window, seg);
            tiles::mask_scores(c2.scores.data(), rows, n, s0, first_i, sh.window, seg);
            const bool any1 = c1.update(rows, n, w);
            const bool any2 = c2.update(rows, n, w);
            if (!any1 && !any2) continue;
#if defined(__AVX512BF16__)
            if (bf16) {
              tiles::bf16::pack_rows(c1.scores.data(), n, rows, n, p1_pairs.data(), tiles::bf16::pairs(n));
              tiles::bf16::pack_rows(c2.scores.data(), n, rows, n, p2_pairs.data(), tiles::bf16::pairs(n));
            }
#endif
            // Each value tile serves both maps while it is in cache: acc += P · V[s0:s0+n] per value head.
            for (int64_t h = 0; h < nv; ++h) {
              const float* vt = v + ((b * sh.n_v_heads + map.v[i * nv + h]) * sh.kv_capacity + s0) * d;
#if defined(__AVX512BF16__)
              if (bf16) {
                const uint32_t* panel = panels.values->along_positions(b, map.v[i * nv + h], sh.n_v_heads, s0);
                tiles::bf16::weighted_rows(p1_pairs.data(), rows, n, panel, d, c1.acc.data() + h * d, w);
                tiles::bf16::weighted_rows(p2_pairs.data(), rows, n, panel, d, c2.acc.data() + h * d, w);
                continue;
              }
#endif
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
            finish_row(p, a1, inv1, a2, inv2, w, row.data(), out + (b * T + t0 + r) * out_stride + i * w);
            if (stats != nullptr && stats->a != nullptr) {
              float* o1 = stats->a + ((b * T + t0 + r) * 2 * Hd + i) * w;
              float* o2 = o1 + Hd * w;
              for (int64_t x = 0; x < w; ++x) {
                o1[x] = a1[x] * inv1;
                o2[x] = a2[x] * inv2;
              }
            }
            if (stats != nullptr && stats->m != nullptr) {
              const int64_t at1 = (b * 2 * Hd + i) * T + t0 + r, at2 = at1 + Hd * T;
              stats->m[at1] = c1.m[r];
              stats->l[at1] = c1.l[r];
              stats->m[at2] = c2.m[r];
              stats->l[at2] = c2.l[r];
            }
          }
        }
      }
    }
  }
}

}  // namespace difftx
