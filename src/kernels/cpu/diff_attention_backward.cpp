#include "kernels/cpu/diff_attention_backward.h"

#include <cstddef>
#include <vector>

#include "kernels/cpu/attention_backward.h"
#include "kernels/cpu/rmsnorm.h"

namespace difftx {

namespace {

// Both components' maps as one list: maps [0, Hd) read (q1, k1), maps [Hd, 2Hd) read (q2, k2); both
// read the head's value heads.
AttentionMaps both_components(const DiffHeadMap& hm) {
  AttentionMaps maps;
  maps.value_heads = hm.value_heads;
  maps.q = hm.q1;
  maps.q.insert(maps.q.end(), hm.q2.begin(), hm.q2.end());
  maps.k = hm.k1;
  maps.k.insert(maps.k.end(), hm.k2.begin(), hm.k2.end());
  maps.v = hm.v;
  maps.v.insert(maps.v.end(), hm.v.begin(), hm.v.end());
  return maps;
}

}  // namespace

double diff_attention_backward(const AttentionShape& sh, const DiffHeadMap& hm, const DiffAttentionParams& p,
                               const float* q, int64_t q_stride, const float* k, const float* v,
                               const int32_t* segments, const DiffAttentionStats& stats, const float* d_out,
                               const AttentionGrads& grads, TileProducts products) {
  const int64_t N = sh.batch * sh.q_len, Hd = hm.n_diff_heads(), w = hm.value_heads * sh.head_dim;
  const float lambda = p.lambda;
  // z = A1 - lambda A2, then dz through the norm (or the identity) and the scale.
  std::vector<float> z(static_cast<std::size_t>(N * Hd * w)), dz(z.size(), 0.0f);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < Hd; ++i) {
      const float* a1 = stats.a + (r * 2 * Hd + i) * w;
      const float* a2 = a1 + Hd * w;
      float* zr = &z[(r * Hd + i) * w];
      for (int64_t x = 0; x < w; ++x) zr[x] = a1[x] - lambda * a2[x];
    }
  if (p.norm) {
    std::vector<float> dy(z.size());
    for (std::size_t i = 0; i < dy.size(); ++i) dy[i] = d_out[i] * p.out_scale;
    rmsnorm_backward(dz.data(), p.norm_weight ? grads.d_norm_weight : nullptr, dy.data(), z.data(), p.norm_weight,
                     N * Hd, w, p.norm_eps);
  } else {
    for (std::size_t i = 0; i < dz.size(); ++i) dz[i] = d_out[i] * p.out_scale;
  }
  // dA1 = dz, dA2 = -lambda dz, in the maps' layout [N, 2Hd, w]; dlambda = -sum dz · A2.
  std::vector<float>& d_maps = z;  // z is no longer needed
  d_maps.resize(static_cast<std::size_t>(N * 2 * Hd * w));
  double d_lambda = 0.0;
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < Hd; ++i) {
      const float* a2 = stats.a + (r * 2 * Hd + Hd + i) * w;
      const float* gz = &dz[(r * Hd + i) * w];
      float* g1 = &d_maps[(r * 2 * Hd + i) * w];
      float* g2 = g1 + Hd * w;
      for (int64_t x = 0; x < w; ++x) {
        g1[x] = gz[x];
        g2[x] = -lambda * gz[x];
        d_lambda -= static_cast<double>(gz[x]) * a2[x];
      }
    }
  AttentionBackwardArgs args =
      backward_args(q, q_stride, k, v, segments, p.scale, stats.m, stats.l, stats.a, d_maps.data(), grads);
  args.products = products;
  attention_maps_backward(sh, both_components(hm), args);
  return d_lambda;
}

void diff_attention_square_sums(const AttentionShape& sh, const DiffHeadMap& hm, float scale, const float* q,
                                int64_t q_stride, const float* k, const int32_t* segments,
                                const DiffAttentionStats& stats, float* square_sums, TileProducts products) {
  AttentionBackwardArgs args =
      backward_args(q, q_stride, k, nullptr, segments, scale, stats.m, stats.l, nullptr, nullptr, {});
  args.products = products;
  attention_maps_square_sums(sh, both_components(hm), args, square_sums);
}

}  // namespace difftx
