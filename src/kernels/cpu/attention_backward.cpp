#include "kernels/cpu/attention_backward.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/attention_tiles.h"
#include "kernels/cpu/vec_math.h"

namespace difftx {

namespace {

constexpr int64_t kQueryTile = 32;
constexpr int64_t kKeyTile = 64;

// The attention weights P [rows, n] of one tile, recomputed from the scores and the forward's row
// statistics. Returns false when the whole tile is masked.
bool recompute_weights(const AttentionBackwardShape& sh, const AttentionMaps& maps, const AttentionBackwardArgs& a,
                       int64_t b, int64_t map, int64_t t0, int64_t rows, int64_t s0, int64_t n, float* p) {
  const int64_t d = sh.head_dim, T = sh.q_len, past = sh.kv_len - sh.q_len, M = maps.count();
  const float* q = a.q + (b * T + t0) * a.q_stride + maps.q[map] * d;
  const float* k = a.k + ((b * sh.n_k_heads + maps.k[map]) * sh.kv_capacity + s0) * d;
  tiles::scores(q, a.q_stride, k, d, rows, n, d, a.scale, p);
  const int32_t* seg = a.segments ? a.segments + b * sh.kv_capacity : nullptr;
  tiles::mask_scores(p, rows, n, s0, past + t0, sh.window, seg);
  bool any = false;
  for (int64_t r = 0; r < rows; ++r) {
    const float m = a.m[(b * M + map) * T + t0 + r];
    const float l = a.l[(b * M + map) * T + t0 + r];
    float* row = p + r * n;
    if (!(l > 0.0f)) {  // the row saw no key in the forward
      std::fill(row, row + n, 0.0f);
      continue;
    }
    const float inv_l = 1.0f / l;
    float visible = 0.0f;
#pragma omp simd reduction(+ : visible)
    for (int64_t j = 0; j < n; ++j) {
      visible += row[j] != tiles::kNegInf ? 1.0f : 0.0f;
      row[j] = vec::exp_flush(row[j] - m) * inv_l;  // masked keys (-inf) give 0
    }
    any = any || visible > 0.0f;
  }
  return any;
}

// Recomputes one tile's weights P and turns them into dS = P ∘ (dP - delta) in `ds` (scale
// included, ready for dq and dk). Returns false when the whole tile is masked.
struct TileGrad {
  const AttentionBackwardShape& sh;
  const AttentionMaps& maps;
  const AttentionBackwardArgs& a;
  int64_t w;

  bool compute(int64_t b, int64_t map, int64_t t0, int64_t rows, int64_t s0, int64_t n, const float* delta,
               float* p, float* ds, float* scratch) const {
    const int64_t d = sh.head_dim, T = sh.q_len, M = maps.count();
    if (!recompute_weights(sh, maps, a, b, map, t0, rows, s0, n, p)) return false;
    // dP = dA · V^T, summed over the value heads' parts of dA.
    std::fill(ds, ds + rows * n, 0.0f);
    const int64_t ld_out = M * w;
    for (int64_t h = 0; h < maps.value_heads; ++h) {
      const float* dout = a.d_out + (b * T + t0) * ld_out + map * w + h * d;
      const float* v = a.v + ((b * sh.n_v_heads + maps.v[map * maps.value_heads + h]) * sh.kv_capacity + s0) * d;
      tiles::scores(dout, ld_out, v, d, rows, n, d, 1.0f, scratch);
      for (int64_t x = 0; x < rows * n; ++x) ds[x] += scratch[x];
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) ds[r * n + j] = p[r * n + j] * (ds[r * n + j] - delta[r]) * a.scale;
    return true;
  }
};

}  // namespace

void attention_maps_backward(const AttentionBackwardShape& sh, const AttentionMaps& maps,
                             const AttentionBackwardArgs& a) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, d = sh.head_dim, M = maps.count();
  const int64_t w = maps.value_heads * d, past = S - T;
  const int64_t q_tiles = (T + kQueryTile - 1) / kQueryTile, k_tiles = (S + kKeyTile - 1) / kKeyTile;
  const TileGrad tile{sh, maps, a, w};

  // delta[b, map, t] = dA · A
  std::vector<float> delta(static_cast<size_t>(B * M * T));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t map = 0; map < M; ++map) {
        const float* o = a.out + ((b * T + t) * M + map) * w;
        const float* g = a.d_out + ((b * T + t) * M + map) * w;
        float s = 0.0f;
        for (int64_t x = 0; x < w; ++x) s += o[x] * g[x];
        delta[(b * M + map) * T + t] = s;
      }

  // dq: each (b, map, query tile) owns its rows of dq.
#pragma omp parallel
  {
    std::vector<float> p(kQueryTile * kKeyTile), ds(kQueryTile * kKeyTile), scratch(kQueryTile * kKeyTile);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t map = 0; map < M; ++map)
        for (int64_t qt = 0; qt < q_tiles; ++qt) {
          const int64_t t0 = qt * kQueryTile, rows = std::min(kQueryTile, T - t0);
          const int64_t last_i = past + t0 + rows - 1;
          const int64_t lo = sh.window > 0 ? std::max<int64_t>(0, past + t0 - sh.window + 1) : 0;
          const float* dl = delta.data() + (b * M + map) * T + t0;
          float* dq = a.dq + (b * T + t0) * a.dq_stride + maps.q[map] * d;
          for (int64_t s0 = lo / kKeyTile * kKeyTile; s0 <= last_i; s0 += kKeyTile) {
            const int64_t n = std::min(kKeyTile, S - s0);
            if (!tile.compute(b, map, t0, rows, s0, n, dl, p.data(), ds.data(), scratch.data())) continue;
            const float* k = a.k + ((b * sh.n_k_heads + maps.k[map]) * sh.kv_capacity + s0) * d;
            tiles::weighted_rows(ds.data(), rows, n, k, d, d, dq, a.dq_stride);
          }
        }
  }

  // dk, dv: each (b, key tile) owns those rows of every key and value head.
#pragma omp parallel
  {
    std::vector<float> p(kQueryTile * kKeyTile), ds(kQueryTile * kKeyTile), scratch(kQueryTile * kKeyTile);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t kt = 0; kt < k_tiles; ++kt) {
        const int64_t s0 = kt * kKeyTile, n = std::min(kKeyTile, S - s0);
        for (int64_t map = 0; map < M; ++map) {
          // Query tiles that can see a key of [s0, s0 + n): cache index i >= s0 (and within the window).
          const int64_t first_t = std::max<int64_t>(0, s0 - past);
          const int64_t last_t = sh.window > 0 ? std::min(T - 1, s0 + n - 1 + sh.window - 1 - past) : T - 1;
          for (int64_t t0 = first_t / kQueryTile * kQueryTile; t0 <= last_t; t0 += kQueryTile) {
            const int64_t rows = std::min(kQueryTile, T - t0);
            const float* dl = delta.data() + (b * M + map) * T + t0;
            if (!tile.compute(b, map, t0, rows, s0, n, dl, p.data(), ds.data(), scratch.data())) continue;
            const float* q = a.q + (b * T + t0) * a.q_stride + maps.q[map] * d;
            float* dk = a.dk + ((b * sh.n_k_heads + maps.k[map]) * sh.kv_capacity + s0) * d;
            tiles::weighted_rows_transposed(ds.data(), rows, n, q, a.q_stride, d, dk, d);
            const int64_t ld_out = M * w;
            for (int64_t h = 0; h < maps.value_heads; ++h) {
              const float* dout = a.d_out + (b * T + t0) * ld_out + map * w + h * d;
              float* dv = a.dv + ((b * sh.n_v_heads + maps.v[map * maps.value_heads + h]) * sh.kv_capacity + s0) * d;
              tiles::weighted_rows_transposed(p.data(), rows, n, dout, ld_out, d, dv, d);
            }
          }
        }
      }
  }
}

void attention_maps_square_sums(const AttentionBackwardShape& sh, const AttentionMaps& maps,
                                const AttentionBackwardArgs& a, float* square_sums) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, M = maps.count(), past = S - T;
  const int64_t q_tiles = (T + kQueryTile - 1) / kQueryTile;
#pragma omp parallel
  {
    std::vector<float> p(kQueryTile * kKeyTile);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t map = 0; map < M; ++map)
        for (int64_t qt = 0; qt < q_tiles; ++qt) {
          const int64_t t0 = qt * kQueryTile, rows = std::min(kQueryTile, T - t0);
          float* out = square_sums + (b * M + map) * T + t0;
          std::fill(out, out + rows, 0.0f);
          for (int64_t s0 = 0; s0 <= past + t0 + rows - 1; s0 += kKeyTile) {
            const int64_t n = std::min(kKeyTile, S - s0);
            if (!recompute_weights(sh, maps, a, b, map, t0, rows, s0, n, p.data())) continue;
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t j = 0; j < n; ++j) out[r] += p[r * n + j] * p[r * n + j];
          }
        }
  }
}

}  // namespace difftx
