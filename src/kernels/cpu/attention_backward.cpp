#include "kernels/cpu/attention_backward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/cpu/attention_tiles.h"
#include "kernels/cpu/attention_tiles_bf16.h"
#include "kernels/cpu/vec_math.h"

namespace difftx {

namespace {

// Query rows per tile: six full register blocks of tile_product.h (32 left a block of 2 rows,
// whose 8 FMAs per step wait on 6 loads; bench/NOTES.md, change 20).
constexpr int64_t kQueryTile = 36;
constexpr int64_t kKeyTile = 64;  // attention_maps_square_sums

// The operands of one tile's score products: float32 keys (transposed where that pays), or with
// bf16 products the keys' panels and the query tile's pairs (tiles::bf16).
struct ScoreOperands {
  const tiles::TransposedKeys& kt;
  const tiles::bf16::CachePanels* k_panels = nullptr;  // bf16 products only
  const uint32_t* q_pairs = nullptr;                    // [rows, pairs(d)]
};

// The attention weights P [rows, n] of one tile, recomputed from the scores and the forward's row
// statistics. Returns false when the whole tile is masked.
bool recompute_weights(const AttentionShape& sh, const AttentionMaps& maps, const AttentionBackwardArgs& a,
                       const ScoreOperands& ops, int64_t b, int64_t map, int64_t t0, int64_t rows, int64_t s0,
                       int64_t n, float* p) {
  const int64_t d = sh.head_dim, T = sh.q_len, past = sh.kv_len - sh.q_len, M = maps.count();
#if defined(__AVX512BF16__)
  if (ops.k_panels != nullptr) {
    tiles::bf16::scores(ops.q_pairs, tiles::bf16::pairs(d), ops.k_panels->along_d(b, maps.k[map], sh.n_k_heads, s0),
                        ops.k_panels->stride_d(), rows, n, d, a.scale, p);
  } else
#endif
  {
    const float* q = a.q + (b * T + t0) * a.q_stride + maps.q[map] * d;
    const float* k = a.k + ((b * sh.n_k_heads + maps.k[map]) * sh.kv_capacity + s0) * d;
    tiles::scores(q, a.q_stride, k, d, ops.kt.at(b, maps.k[map], s0), ops.kt.stride(), rows, n, d, a.scale, p);
  }
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
  const AttentionShape& sh;
  const AttentionMaps& maps;
  const AttentionBackwardArgs& a;
  const tiles::TransposedKeys& kt;  // keys and values, transposed where that pays
  const tiles::TransposedKeys& vt;
  const tiles::bf16::CachePanels* k_panels;  // bf16 products: keys along d and along positions
  const tiles::bf16::CachePanels* v_panels;  // bf16 products: values along d
  int64_t w;

  // q_pairs, dout_pairs: with bf16 products, room for [rows, pairs(d)] each (q_pairs is filled).
  bool compute(int64_t b, int64_t map, int64_t t0, int64_t rows, int64_t s0, int64_t n, const float* delta,
               float* p, float* ds, float* scratch, uint32_t* q_pairs, uint32_t* dout_pairs) const {
    const int64_t d = sh.head_dim, T = sh.q_len, M = maps.count();
    ScoreOperands ops{kt};
#if defined(__AVX512BF16__)
    if (k_panels != nullptr) {
      tiles::bf16::pack_rows(a.q + (b * T + t0) * a.q_stride + maps.q[map] * d, a.q_stride, rows, d, q_pairs,
                             tiles::bf16::pairs(d));
      ops.k_panels = k_panels;
      ops.q_pairs = q_pairs;
    }
#else
    (void)q_pairs, (void)dout_pairs;
#endif
    if (!recompute_weights(sh, maps, a, ops, b, map, t0, rows, s0, n, p)) return false;
    // dP = dA · V^T, summed over the value heads' parts of dA.
    const int64_t ld_out = M * w;
    for (int64_t h = 0; h < maps.value_heads; ++h) {
      const float* dout = a.d_out + (b * T + t0) * ld_out + map * w + h * d;
      const float* v = a.v + ((b * sh.n_v_heads + maps.v[map * maps.value_heads + h]) * sh.kv_capacity + s0) * d;
      const int64_t vh = maps.v[map * maps.value_heads + h];
#if defined(__AVX512BF16__)
      if (v_panels != nullptr) {
        tiles::bf16::pack_rows(dout, ld_out, rows, d, dout_pairs, tiles::bf16::pairs(d));
        tiles::bf16::scores(dout_pairs, tiles::bf16::pairs(d), v_panels->along_d(b, vh, sh.n_v_heads, s0),
                            v_panels->stride_d(), rows, n, d, 1.0f, h == 0 ? ds : scratch);
      } else
#endif
        tiles::scores(dout, ld_out, v, d, vt.at(b, vh, s0), vt.stride(), rows, n, d, 1.0f, h == 0 ? ds : scratch);
      if (h > 0)
#pragma omp simd
        for (int64_t x = 0; x < rows * n; ++x) ds[x] += scratch[x];
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* pr = p + r * n;
      float* dr = ds + r * n;
      const float dl = delta[r];
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - dl) * a.scale;
    }
    return true;
  }
};

}  // namespace

void attention_maps_backward(const AttentionShape& sh, const AttentionMaps& maps,
                             const AttentionBackwardArgs& a) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, d = sh.head_dim, M = maps.count();
  const int64_t w = maps.value_heads * d, past = S - T;
  const int64_t q_tiles = (T + kQueryTile - 1) / kQueryTile;
  const bool bf16 = tiles::bf16::use_bf16_tiles(a.products, T);
  const tiles::TransposedKeys kt(a.k, B, sh.n_k_heads, sh.kv_capacity, S, d, bf16 ? 0 : T);
  const tiles::TransposedKeys vt(a.v, B, sh.n_v_heads, sh.kv_capacity, S, d, bf16 ? 0 : T);
#if defined(__AVX512BF16__)
  using tiles::bf16::CachePanels;
  const std::unique_ptr<CachePanels> k_panels(
      bf16 ? new CachePanels(a.k, B, sh.n_k_heads, sh.kv_capacity, S, d,
                             CachePanels::kAlongD | CachePanels::kAlongPositions)
           : nullptr);
  const std::unique_ptr<CachePanels> v_panels(
      bf16 ? new CachePanels(a.v, B, sh.n_v_heads, sh.kv_capacity, S, d, CachePanels::kAlongD) : nullptr);
  const TileGrad tile{sh, maps, a, kt, vt, k_panels.get(), v_panels.get(), w};
#else
  const TileGrad tile{sh, maps, a, kt, vt, nullptr, nullptr, w};
#endif

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

  // One pass over (b, map, query tile): the tile's weights against every key it may see are
  // recomputed at once, so each product is one matrix product with a long side. dq rows belong to
  // one work item; dk and dv rows are shared by maps and tiles, so each thread sums into its own
  // copy (static schedule: the same partition, hence the same float sums, on every run with the
  // same thread count) and the copies are added in thread order at the end.
  const int64_t k_rows = B * sh.n_k_heads * S * d, v_rows = B * sh.n_v_heads * S * d;
  const int max_threads = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(max_threads) * static_cast<size_t>(k_rows + v_rows));
  int used_threads = 1;
#pragma omp parallel
  {
    const int tid = omp_get_thread_num();
#pragma omp single
    used_threads = omp_get_num_threads();
    float* my_dk = partial.data() + static_cast<size_t>(tid) * static_cast<size_t>(k_rows + v_rows);
    float* my_dv = my_dk + k_rows;
    std::fill(my_dk, my_dk + k_rows + v_rows, 0.0f);
    const size_t tile_size = static_cast<size_t>(kQueryTile * S);
    std::vector<float> p(tile_size), ds(tile_size), scratch(tile_size);
    // bf16 operands (tiles::bf16): the query and output-gradient tiles' pairs, dS's pairs, and the
    // transposed products' scratch.
    std::vector<uint32_t> q_pairs, dout_pairs, ds_pairs, t_scratch;
    if (bf16) {
      q_pairs.resize(static_cast<size_t>(kQueryTile * d));
      dout_pairs.resize(q_pairs.size());
      ds_pairs.resize(static_cast<size_t>(kQueryTile * (S + 2)));
      t_scratch.resize(static_cast<size_t>(tiles::bf16::transposed_scratch_size(kQueryTile, S + 2, d)));
    }
    const int64_t ld_out = M * w;
#pragma omp for collapse(3) schedule(static, 1)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t map = 0; map < M; ++map)
        for (int64_t qt = 0; qt < q_tiles; ++qt) {
          const int64_t t0 = qt * kQueryTile, rows = std::min(kQueryTile, T - t0);
          const int64_t last_i = past + t0 + rows - 1;
          int64_t lo = sh.window > 0 ? std::max<int64_t>(0, past + t0 - sh.window + 1) : 0;
          if (bf16) lo -= lo % 2;  // the key panels' pairs start at even positions (the extra key is masked)
          const int64_t n = last_i + 1 - lo;
          const float* dl = delta.data() + (b * M + map) * T + t0;
          if (!tile.compute(b, map, t0, rows, lo, n, dl, p.data(), ds.data(), scratch.data(), q_pairs.data(),
                            dout_pairs.data()))
            continue;
          const float* k = a.k + ((b * sh.n_k_heads + maps.k[map]) * sh.kv_capacity + lo) * d;
          const float* q = a.q + (b * T + t0) * a.q_stride + maps.q[map] * d;
          float* dq = a.dq + (b * T + t0) * a.dq_stride + maps.q[map] * d;
          float* dk = my_dk + ((b * sh.n_k_heads + maps.k[map]) * S + lo) * d;
#if defined(__AVX512BF16__)
          if (bf16) {
            namespace bf = tiles::bf16;
            bf::pack_rows(ds.data(), n, rows, n, ds_pairs.data(), bf::pairs(n));
            bf::weighted_rows(ds_pairs.data(), rows, n, k_panels->along_positions(b, maps.k[map], sh.n_k_heads, lo),
                              d, dq, a.dq_stride);
            bf::weighted_rows_transposed(ds.data(), rows, n, q, a.q_stride, d, dk, d, t_scratch.data());
            for (int64_t h = 0; h < maps.value_heads; ++h) {
              const float* dout = a.d_out + (b * T + t0) * ld_out + map * w + h * d;
              bf::weighted_rows_transposed(
                  p.data(), rows, n, dout, ld_out, d,
                  my_dv + ((b * sh.n_v_heads + maps.v[map * maps.value_heads + h]) * S + lo) * d, d,
                  t_scratch.data());
            }
            continue;
          }
#endif
          tiles::weighted_rows(ds.data(), rows, n, k, d, d, dq, a.dq_stride);
          tiles::weighted_rows_transposed(ds.data(), rows, n, q, a.q_stride, d, dk, d);
          for (int64_t h = 0; h < maps.value_heads; ++h) {
            const float* dout = a.d_out + (b * T + t0) * ld_out + map * w + h * d;
            tiles::weighted_rows_transposed(
                p.data(), rows, n, dout, ld_out, d,
                my_dv + ((b * sh.n_v_heads + maps.v[map * maps.value_heads + h]) * S + lo) * d, d);
          }
        }
    // Sum the copies into dk and dv, thread 0 first.
#pragma omp for schedule(static)
    for (int64_t row = 0; row < B * (sh.n_k_heads + sh.n_v_heads) * S; ++row) {
      const bool is_k = row < B * sh.n_k_heads * S;
      const int64_t r = is_k ? row : row - B * sh.n_k_heads * S;
      const int64_t bh = r / S, s = r % S;  // (batch, head) and position
      float* dst = (is_k ? a.dk : a.dv) + (bh * sh.kv_capacity + s) * d;
      for (int t = 0; t < used_threads; ++t) {
        const float* src = partial.data() + static_cast<size_t>(t) * static_cast<size_t>(k_rows + v_rows) +
                           (is_k ? 0 : k_rows) + r * d;
#pragma omp simd
        for (int64_t x = 0; x < d; ++x) dst[x] += src[x];
      }
    }
  }
}

void attention_maps_square_sums(const AttentionShape& sh, const AttentionMaps& maps,
                                const AttentionBackwardArgs& a, float* square_sums) {
  const int64_t B = sh.batch, T = sh.q_len, S = sh.kv_len, M = maps.count(), past = S - T;
  const int64_t q_tiles = (T + kQueryTile - 1) / kQueryTile, d = sh.head_dim;
  // The scores as the forward computed them: bf16 products when it used them.
  const bool bf16 = tiles::bf16::use_bf16_tiles(a.products, T);
  const tiles::TransposedKeys kt(a.k, B, sh.n_k_heads, sh.kv_capacity, S, d, bf16 ? 0 : T);
#if defined(__AVX512BF16__)
  using tiles::bf16::CachePanels;
  const std::unique_ptr<CachePanels> k_panels(
      bf16 ? new CachePanels(a.k, B, sh.n_k_heads, sh.kv_capacity, S, d, CachePanels::kAlongD) : nullptr);
#endif
#pragma omp parallel
  {
    std::vector<float> p(kQueryTile * kKeyTile);
    std::vector<uint32_t> q_pairs(bf16 ? static_cast<size_t>(kQueryTile * d) : 0);
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t map = 0; map < M; ++map)
        for (int64_t qt = 0; qt < q_tiles; ++qt) {
          const int64_t t0 = qt * kQueryTile, rows = std::min(kQueryTile, T - t0);
          float* out = square_sums + (b * M + map) * T + t0;
          std::fill(out, out + rows, 0.0f);
          ScoreOperands ops{kt};
#if defined(__AVX512BF16__)
          if (bf16) {
            tiles::bf16::pack_rows(a.q + (b * T + t0) * a.q_stride + maps.q[map] * d, a.q_stride, rows, d,
                                   q_pairs.data(), tiles::bf16::pairs(d));
            ops.k_panels = k_panels.get();
            ops.q_pairs = q_pairs.data();
          }
#endif
          for (int64_t s0 = 0; s0 <= past + t0 + rows - 1; s0 += kKeyTile) {
            const int64_t n = std::min(kKeyTile, S - s0);
            if (!recompute_weights(sh, maps, a, ops, b, map, t0, rows, s0, n, p.data())) continue;
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t j = 0; j < n; ++j) out[r] += p[r * n + j] * p[r * n + j];
          }
        }
  }
}

void attention_backward(const AttentionShape& sh, const float* q, int64_t q_stride, const float* k, const float* v,
                        const int32_t* segments, float scale, const float* m, const float* l, const float* out,
                        const float* d_out, const AttentionGrads& grads, TileProducts products) {
  AttentionMaps maps;
  const int64_t group = sh.n_q_heads / sh.n_k_heads;
  for (int64_t h = 0; h < sh.n_q_heads; ++h) {
    maps.q.push_back(static_cast<int32_t>(h));
    maps.k.push_back(static_cast<int32_t>(h / group));
    maps.v.push_back(static_cast<int32_t>(h / group));
  }
  AttentionBackwardArgs args = backward_args(q, q_stride, k, v, segments, scale, m, l, out, d_out, grads);
  args.products = products;
  attention_maps_backward(sh, maps, args);
}

}  // namespace difftx
