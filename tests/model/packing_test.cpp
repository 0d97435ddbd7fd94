// Sample packing: documents packed into one row (segment ids, positions restarting at 0) give the
// same logits and the same gradients as the documents run one by one: no attention crosses a
// document boundary, for standard and differential layouts.
#include <gtest/gtest.h>

#include <cmath>

#include "golden_util.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/trace.h"

namespace difftx {
namespace {

TokenBatch one_row(const std::vector<int32_t>& ids) {
  TokenBatch b;
  b.seq_len = static_cast<int64_t>(ids.size());
  b.ids = ids;
  return b;
}

std::vector<int32_t> next_targets(const std::vector<int32_t>& ids) {
  std::vector<int32_t> t(ids.begin() + 1, ids.end());
  t.push_back(kIgnoreIndex);
  return t;
}

class PackingTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PackingTest, PackedDocumentsEqualSeparateRuns) {
  auto g = test::golden_case_load(GetParam());
  Model model = test::golden_model_load(g);
  const std::vector<int32_t> a = {5, 9, 2, 7, 1}, b = {3, 3, 8, 4, 6, 2, 11};
  TokenBatch packed;
  packed.seq_len = static_cast<int64_t>(a.size() + b.size());
  packed.ids = a;
  packed.ids.insert(packed.ids.end(), b.begin(), b.end());
  for (size_t i = 0; i < a.size(); ++i) {
    packed.segment_ids.push_back(1);
    packed.position_ids.push_back(static_cast<int64_t>(i));
  }
  for (size_t i = 0; i < b.size(); ++i) {
    packed.segment_ids.push_back(2);
    packed.position_ids.push_back(static_cast<int64_t>(i));
  }
  const int64_t V = model.config().vocab_size;
  std::vector<float> lp, la, lb;
  model.forward(packed, nullptr, LogitsMode::all, lp);
  model.forward(one_row(a), nullptr, LogitsMode::all, la);
  model.forward(one_row(b), nullptr, LogitsMode::all, lb);
  for (int64_t i = 0; i < static_cast<int64_t>(a.size() * V); ++i) ASSERT_NEAR(lp[i], la[i], 1e-4);
  for (int64_t i = 0; i < static_cast<int64_t>(b.size() * V); ++i) ASSERT_NEAR(lp[a.size() * V + i], lb[i], 1e-4);

  // Gradients: packed (targets end each document) == sum of the separate runs.
  std::vector<int32_t> tp = next_targets(a), tb = next_targets(b);
  tp.insert(tp.end(), tb.begin(), tb.end());
  std::vector<float> gp(model.weights().size(), 0.0f), gs(gp.size(), 0.0f);
  ForwardTrace trace;
  const double loss_p = model.loss_and_backward(packed, tp, 0.1f, gp, trace);
  const double loss_s = model.loss_and_backward(one_row(a), next_targets(a), 0.1f, gs, trace) +
                        model.loss_and_backward(one_row(b), next_targets(b), 0.1f, gs, trace);
  EXPECT_NEAR(loss_p, loss_s, 1e-4 * loss_s);
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < gp.size(); ++i) {
    max_diff = std::max(max_diff, double(std::abs(gp[i] - gs[i])));
    max_ref = std::max(max_ref, double(std::abs(gs[i])));
  }
  EXPECT_LE(max_diff / max_ref, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PackingTest,
                         ::testing::Values("llama_gqa_tied_padded", "qwen3_qknorm", "diff_double_subln_gqa",
                                           "diff_split_subln_gqa", "diffllama_gqa"),
                         [](const auto& i) { return i.param; });

}  // namespace
}  // namespace difftx
