#include "kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <memory>
#include <tuple>
#include <vector>

#include "kernels/cpu/attention_tiles.h"
#include "kernels/cpu/attention_tiles_bf16.h"

namespace difftx {

namespace {

// Query rows per tile: six full register blocks of tile_product.h (32 left a block of 2 rows,
// whose 8 FMAs per step wait on 6 loads; bench/NOTES.md, change 20).
constexpr int64_t kQueryTile = 36;
// One query per batch row (decoding). The query heads that share a key/value head are scored
// together, so each cached key and value is read once per step instead of once per head, and the
// visible keys are split into chunks merged exactly (tiles::split_keys).
void attention_decode(const AttentionShape& sh, const float* q, int64_t q_stride, const float* k, const float* v,
                      const int32_t* segments, float scale, float* out, int64_t out_stride) {
  const int64_t B = sh.batch, S = sh.kv_len, H = sh.n_q_heads, KV = sh.n_k_heads, d = sh.head_dim;
  const int64_t group = H / KV, past = S - 1;
  const int64_t lo = sh.window > 0 ? std::max<int64_t>(0, past - sh.window + 1) : 0;
  const tiles::KeyChunks chunks = tiles::split_keys(S - lo, B * KV, omp_get_max_threads());
  const int64_t items = B * KV * chunks.count;
  std::vector<float> part_m(static_cast<size_t>(items * group)), part_l(part_m.size());
  std::vector<float> part_acc(static_cast<size_t>(items * group * d));

#pragma omp parallel
  {
    const std::unique_ptr<float[]> scores(new float[static_cast<size_t>(group * chunks.size)]);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t b = item / (KV * chunks.count), kvh = item / chunks.count % KV, c = item % chunks.count;
      const int64_t s0 = lo + c * chunks.size, n = std::min(chunks.size, S - s0);
      float* m = part_m.data() + item * group;
      float* l = part_l.data() + item * group;
      float* acc = part_acc.data() + item * group * d;
      std::fill(acc, acc + group * d, 0.0f);
      if (n <= 0) {
        std::fill(m, m + group, tiles::kNegInf);
        std::fill(l, l + group, 0.0f);
        continue;
      }
      const float* qg = q + b * q_stride + kvh * group * d;  // the group's heads are adjacent
      const float* kc = k + ((b * KV + kvh) * sh.kv_capacity + s0) * d;
      const float* vc = v + ((b * KV + kvh) * sh.kv_capacity + s0) * d;
      const int32_t* seg = segments ? segments + b * sh.kv_capacity : nullptr;
      tiles::scores(qg, d, kc, d, group, n, d, scale, scores.get());
      for (int64_t g = 0; g < group; ++g) {
        float* row = scores.get() + g * n;
        tiles::mask_scores(row, 1, n, s0, past, sh.window, seg);
        std::tie(m[g], l[g]) = tiles::softmax_numerators(row, n);  // all 0 when nothing is visible
      }
      tiles::weighted_rows(scores.get(), group, n, vc, d, d, acc, d);
    }
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t first = (b * KV + h / group) * chunks.count * group + h % group;  // chunk 0 of this head
      float* o = out + b * out_stride + h * d;
      const float sum = tiles::merge_key_chunks(&part_m[first], &part_l[first], group, &part_acc[first * d], group * d,
                                                chunks.count, d, o);
      if (sum > 0.0f)
        for (int64_t x = 0; x < d; ++x) o[x] /= sum;
    }
}

}  // namespace

void attention_forward(const AttentionShape& sh, const float* q, int64_t q_stride, const float* k, const float* v,
                       const int32_t* segments, float scale, float* out, int64_t out_stride, float* stats_m,
                       float* stats_l, TileProducts products) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, H = sh.n_q_heads, d = sh.head_dim;
  const int64_t group = H / sh.n_k_heads;
  const int64_t past = S - T;
  if (T == 1 && stats_m == nullptr) return attention_decode(sh, q, q_stride, k, v, segments, scale, out, out_stride);
  const int64_t tiles = (T + kQueryTile - 1) / kQueryTile;
  const bool bf16 = tiles::bf16::use_bf16_tiles(products, T);
  const tiles::TransposedKeys kt_all(k, B, sh.n_k_heads, sh.kv_capacity, S, d, bf16 ? 0 : T);
#if defined(__AVX512BF16__)
  const tiles::bf16::ForwardPanels panels(bf16, sh, k, v);
#endif

#pragma omp parallel
  {
    // Written before it is read: no zero fill (decoding calls this for every layer and token).
    const std::unique_ptr<float[]> scores(new float[static_cast<size_t>(std::min(kQueryTile, T) * S)]);
    // bf16 operands: the query tile's pairs, then P's (tiles::bf16).
    std::unique_ptr<uint32_t[]> q_pairs, pairs;
    if (bf16) {
      q_pairs.reset(new uint32_t[static_cast<size_t>(kQueryTile * d)]);
      pairs.reset(new uint32_t[static_cast<size_t>(kQueryTile * (S + 2))]);
    }
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t t0 = tile * kQueryTile;
          const int64_t rows = std::min(kQueryTile, T - t0);
          const int64_t kvh = h / group;
          // Keys any row of this tile may see: [lo, hi).
          const int64_t hi = past + t0 + rows;
          int64_t lo = sh.window > 0 ? std::max<int64_t>(0, past + t0 - sh.window + 1) : 0;
          if (bf16) lo -= lo % 2;  // the value panels' pairs start at even positions (the extra key is masked)
          const int64_t n = hi - lo;
          const float* qt = q + (b * T + t0) * q_stride + h * d;
          const float* kt = k + ((b * sh.n_k_heads + kvh) * sh.kv_capacity + lo) * d;
          const float* vt = v + ((b * sh.n_v_heads + kvh) * sh.kv_capacity + lo) * d;
          float* ot = out + (b * T + t0) * out_stride + h * d;
          const int32_t* seg = segments ? segments + b * sh.kv_capacity : nullptr;

          // scores[rows, n] = scale * q_tile · k[lo:hi]^T
#if defined(__AVX512BF16__)
          if (bf16) {
            tiles::bf16::pack_rows(qt, q_stride, rows, d, q_pairs.get(), tiles::bf16::pairs(d));
            tiles::bf16::scores(q_pairs.get(), tiles::bf16::pairs(d), panels.keys->along_d(b, kvh, sh.n_k_heads, lo),
                                panels.keys->stride_d(), rows, n, d, scale, scores.get());
          } else
#endif
            tiles::scores(qt, q_stride, kt, d, kt_all.at(b, kvh, lo), kt_all.stride(), rows, n, d, scale,
                          scores.get());
          tiles::mask_scores(scores.get(), rows, n, lo, past + t0, sh.window, seg);
          for (int64_t r = 0; r < rows; ++r) {
            float* row = scores.get() + r * n;
            const auto [mx, sum] = tiles::softmax_numerators(row, n);  // all 0 when nothing is visible
            if (sum > 0.0f) {
              const float inv = 1.0f / sum;
#pragma omp simd
              for (int64_t j = 0; j < n; ++j) row[j] *= inv;
            }
            if (stats_m != nullptr) {
              const int64_t at = (b * H + h) * T + t0 + r;
              stats_m[at] = mx;
              stats_l[at] = sum;
            }
          }
          // out_tile[rows, d] = P · v[lo:hi]
          for (int64_t r = 0; r < rows; ++r) std::fill(ot + r * out_stride, ot + r * out_stride + d, 0.0f);
#if defined(__AVX512BF16__)
          if (bf16) {
            tiles::bf16::pack_rows(scores.get(), n, rows, n, pairs.get(), tiles::bf16::pairs(n));
            tiles::bf16::weighted_rows(pairs.get(), rows, n, panels.values->along_positions(b, kvh, sh.n_v_heads, lo), d,
                                       ot, out_stride);
          } else
#endif
            tiles::weighted_rows(scores.get(), rows, n, vt, d, d, ot, out_stride);
        }
      }
    }
  }
}

}  // namespace difftx
