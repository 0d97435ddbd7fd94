// model/attention_maps.h on every golden case: the maps' rows sum to 1 (the difference's to
// 1 - lambda), nothing beyond the causal (and sliding-window) mask, and multiplied by the values
// they give the attention outputs the model's own kernels computed in the same forward pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "model/attention/layout.h"
#include "model/attention_maps.h"
#include "model/diff_layout.h"
#include "model/golden_util.h"
#include "model/trace.h"

namespace difftx {
namespace {

class AttentionMapsTest : public ::testing::TestWithParam<std::string> {};

// Row 0 of the case's batch, its real tokens only.
std::vector<int32_t> first_row(const test::GoldenCase& g) {
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < g.batch.seq_len; ++t)
    if (g.batch.attention_mask.empty() || g.batch.attention_mask[t]) ids.push_back(g.batch.ids[t]);
  return ids;
}

// out[i, :] = sum_j map[i, j] v[j, :] with v the value cache [KV, T, d] at value head `vh`.
std::vector<double> apply(const std::vector<float>& map, const LayerTrace& tr, int64_t T, int64_t d, int64_t vh) {
  std::vector<double> out(static_cast<size_t>(T * d), 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j)
      for (int64_t e = 0; e < d; ++e) out[i * d + e] += static_cast<double>(map[i * T + j]) * tr.vc[(vh * T + j) * d + e];
  return out;
}

// max |ours - kernel| / max |kernel| over T rows of `width` floats read from `kernel` at `offset`
// with `stride` floats between rows.
double rel_diff(const std::vector<double>& ours, const std::vector<float>& kernel, int64_t T, int64_t width,
                int64_t offset, int64_t stride) {
  double diff = 0, scale = 1e-30;
  for (int64_t i = 0; i < T; ++i)
    for (int64_t e = 0; e < width; ++e) {
      const double k = kernel[i * stride + offset + e];
      diff = std::max(diff, std::abs(ours[i * width + e] - k));
      scale = std::max(scale, std::abs(k));
    }
  return diff / scale;
}

TEST_P(AttentionMapsTest, RowsSumToOneAndTimesTheValuesGiveTheKernelsOutputs) {
  const test::GoldenCase g = test::golden_case_load(GetParam());
  const Model model = test::golden_model_load(g);
  const ModelConfig& c = model.config();
  const std::vector<int32_t> ids = first_row(g);
  const int64_t T = static_cast<int64_t>(ids.size()), d = c.head_dim, layer = c.num_hidden_layers - 1;
  const AttentionMaps maps = attention_maps(model, ids, layer, {}, 0);
  ASSERT_EQ(static_cast<int64_t>(maps.heads.size()), attention_map_head_count(c));
  EXPECT_EQ(maps.differential, c.is_differential());

  TokenBatch batch{1, T, ids, {}, {}, {}};
  ForwardTrace trace;
  std::vector<float> unused;
  model.forward(batch, nullptr, LogitsMode::hidden, unused, &trace);
  const LayerTrace& tr = trace.layers[static_cast<size_t>(layer)];
  const int64_t QH = c.q_proj_rows() / d, KH = c.k_proj_rows() / d, KV = c.num_key_value_heads;

  for (const HeadMaps& m : maps.heads) {
    for (const auto* map : {&m.positive, &m.negative}) {
      if (map->empty()) continue;
      for (int64_t i = 0; i < T; ++i) {
        double sum = 0;
        for (int64_t j = 0; j < T; ++j) {
          const bool visible = j <= i && (c.sliding_window == 0 || i - j < c.sliding_window);
          if (!visible) {
            EXPECT_EQ((*map)[i * T + j], 0.0f) << "row " << i << " key " << j;
          }
          EXPECT_GE((*map)[i * T + j], 0.0f);
          sum += (*map)[i * T + j];
        }
        EXPECT_NEAR(sum, 1.0, 1e-5) << "head " << m.head << " row " << i;
      }
    }
    if (!c.is_differential()) {
      const auto out = apply(m.positive, tr, T, d, m.head / (QH / KH));
      EXPECT_LT(rel_diff(out, tr.att, T, d, m.head * d, c.num_attention_heads * d), 1e-5) << "head " << m.head;
      continue;
    }
    for (int64_t i = 0; i < T; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < T; ++j) sum += m.difference[i * T + j];
      EXPECT_NEAR(sum, 1.0 - m.lambda[i], 1e-5) << "head " << m.head << " row " << i;
    }
    if (layout_module(c).per_token_lambda()) {  // diff-v2: the kernels' per-query-head outputs (att_pairs)
      const int64_t vh = 2 * m.head / (QH / KV);
      EXPECT_LT(rel_diff(apply(m.positive, tr, T, d, vh), tr.a, T, d, 2 * m.head * d, QH * d), 1e-5);
      EXPECT_LT(rel_diff(apply(m.negative, tr, T, d, vh), tr.a, T, d, (2 * m.head + 1) * d, QH * d), 1e-5);
    } else {  // fused layouts: a = [N, 2 Hd, w], maps [0, Hd) then [Hd, 2Hd); w = value_heads * d
      const DiffHeadMap hm = diff_head_map(c);
      const int64_t Hd = hm.n_diff_heads(), w = hm.value_heads * d;
      for (int64_t part = 0; part < hm.value_heads; ++part) {
        const int64_t vh = hm.v[m.head * hm.value_heads + part];
        EXPECT_LT(rel_diff(apply(m.positive, tr, T, d, vh), tr.a, T, d, m.head * w + part * d, 2 * Hd * w), 1e-5)
            << "head " << m.head;
        EXPECT_LT(rel_diff(apply(m.negative, tr, T, d, vh), tr.a, T, d, (Hd + m.head) * w + part * d, 2 * Hd * w),
                  1e-5)
            << "head " << m.head;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(GoldenCases, AttentionMapsTest, ::testing::ValuesIn(test::golden_case_names()));

TEST(AttentionMapsErrorsTest, LayerHeadAndLengthOutOfRangeAreRefused) {
  const test::GoldenCase g = test::golden_case_load("diff_double_subln_gqa");
  const Model model = test::golden_model_load(g);
  const ModelConfig& c = model.config();
  const std::vector<int32_t> ids = {1, 2, 3};
  try {
    attention_maps(model, ids, c.num_hidden_layers, {}, 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("layer {} does not exist", c.num_hidden_layers)), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(attention_maps(model, ids, -1, {}, 0), ConfigError);
  const int64_t heads = attention_map_head_count(c);
  try {
    attention_maps(model, ids, 0, {0, heads}, 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("head {} does not exist", heads)), std::string::npos) << e.what();
  }
  EXPECT_THROW(attention_maps(model, std::vector<int32_t>{}, 0, {}, 0), ShapeError);
  std::vector<int32_t> long_ids(static_cast<size_t>(c.max_position_embeddings + 1), 1);
  try {
    attention_maps(model, long_ids, 0, {}, c.max_position_embeddings);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("has {} tokens, more than the {} allowed", long_ids.size(), c.max_position_embeddings)), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace difftx
