// Model::decode_rows (continuous batching): several sequences with caches of their own decode one
// token each in one pass; every row equals its sequence's own decode step, and a row's values do
// not depend on which rows run beside it. Every golden case (every layout, rope type, window).
#include <gtest/gtest.h>

#include <memory>

#include "common/error.h"
#include "golden_util.h"
#include "model/kv_cache.h"

namespace difftx {
namespace {

TokenBatch one_row(const std::vector<int32_t>& ids, size_t from, size_t to) {
  TokenBatch b;
  b.seq_len = static_cast<int64_t>(to - from);
  b.ids.assign(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.begin() + static_cast<std::ptrdiff_t>(to));
  return b;
}

class DecodeRowsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    g = test::golden_case_load(GetParam());
    model = std::make_unique<Model>(test::golden_model_load(g));
    V = model->config().vocab_size;
    const auto T = static_cast<size_t>(g.batch.seq_len);
    ASSERT_GE(T, 4u);
    const std::vector<int32_t> row0(g.batch.ids.begin(), g.batch.ids.begin() + static_cast<std::ptrdiff_t>(T));
    // Three sequences of different lengths (their caches hold different lengths).
    for (size_t len : {T, T - 1, T - 3}) {
      std::vector<int32_t> s(row0.begin(), row0.begin() + static_cast<std::ptrdiff_t>(len));
      if (seqs.size() == 2) std::reverse(s.begin(), s.end());
      seqs.push_back(s);
    }
  }
  // A cache holding every token of s but the last.
  std::unique_ptr<KVCache> prefilled(const std::vector<int32_t>& s) {
    auto cache = std::make_unique<KVCache>(model->config(), 1, static_cast<int64_t>(s.size()) + 2);
    std::vector<float> ignored;
    model->forward(one_row(s, 0, s.size() - 1), cache.get(), LogitsMode::last, ignored);
    return cache;
  }
  std::vector<float> rows(const Buffer& logits, int64_t n) {
    return std::vector<float>(logits.as<const float>(), logits.as<const float>() + n * V);
  }
  test::GoldenCase g;
  std::unique_ptr<Model> model;
  int64_t V = 0;
  std::vector<std::vector<int32_t>> seqs;
};

TEST_P(DecodeRowsTest, EachRowEqualsItsOwnDecodeStep) {
  std::vector<std::unique_ptr<KVCache>> caches;
  std::vector<KVCache*> row_caches;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < seqs.size(); ++i) {
    caches.push_back(prefilled(seqs[i]));
    row_caches.push_back(caches.back().get());
    ids.push_back(seqs[i].back());
    if (i == 0) {  // a padding row between the sequences
      row_caches.push_back(nullptr);
      ids.push_back(0);
    }
  }
  const std::vector<float> batched = rows(model->decode_rows(ids, row_caches), static_cast<int64_t>(ids.size()));
  size_t row = 0;
  for (size_t i = 0; i < seqs.size(); ++i, ++row) {
    if (i == 1) ++row;  // the padding row
    EXPECT_EQ(caches[i]->length(), static_cast<int64_t>(seqs[i].size()));
    auto own = prefilled(seqs[i]);
    std::vector<float> step;
    model->forward(one_row(seqs[i], seqs[i].size() - 1, seqs[i].size()), own.get(), LogitsMode::last, step);
    double max_diff = 0, max_ref = 0;
    for (int64_t v = 0; v < V; ++v) {
      max_diff = std::max(max_diff, double(std::abs(batched[row * V + v] - step[v])));
      max_ref = std::max(max_ref, double(std::abs(step[v])));
    }
    EXPECT_LE(max_diff / max_ref, 1e-5) << "sequence " << i;
  }
}

TEST_P(DecodeRowsTest, ARowDoesNotDependOnTheRowsBesideIt) {
  // Sequence 0 alone among padding rows, then beside the others: the same bits.
  auto alone = prefilled(seqs[0]);
  const std::vector<KVCache*> alone_rows = {alone.get(), nullptr, nullptr};
  const std::vector<float> a = rows(model->decode_rows(std::vector<int32_t>{seqs[0].back(), 0, 0}, alone_rows), 3);
  auto c0 = prefilled(seqs[0]), c1 = prefilled(seqs[1]), c2 = prefilled(seqs[2]);
  const std::vector<KVCache*> full_rows = {c0.get(), c1.get(), c2.get()};
  const std::vector<float> b =
      rows(model->decode_rows(std::vector<int32_t>{seqs[0].back(), seqs[1].back(), seqs[2].back()}, full_rows), 3);
  for (int64_t v = 0; v < V; ++v) ASSERT_EQ(a[v], b[v]) << "logit " << v;
  // And a second step on each cache continues from the first.
  const std::vector<float> again = rows(model->decode_rows(std::vector<int32_t>{1, 0, 0}, alone_rows), 3);
  EXPECT_EQ(alone->length(), static_cast<int64_t>(seqs[0].size()) + 1);
  EXPECT_NE(again[0], a[0]);
}

INSTANTIATE_TEST_SUITE_P(Cases, DecodeRowsTest, ::testing::ValuesIn(test::golden_case_names()),
                         [](const auto& info) { return info.param; });

TEST(DecodeRows, RejectsBadRows) {
  auto g = test::golden_case_load("llama_mha");
  Model model = test::golden_model_load(g);
  KVCache wide(model.config(), 2, 8), full(model.config(), 1, 1), fine(model.config(), 1, 8);
  std::vector<float> ignored;
  model.forward(one_row(g.batch.ids, 0, 1), &full, LogitsMode::last, ignored);
  const auto call = [&](std::vector<int32_t> ids, std::vector<KVCache*> caches) { model.decode_rows(ids, caches); };
  EXPECT_THROW(call({1}, {&wide}), ShapeError);
  EXPECT_THROW(call({1}, {&full}), ShapeError);
  EXPECT_THROW(call({static_cast<int32_t>(model.config().vocab_size)}, {&fine}), ShapeError);
  EXPECT_THROW(call({1, 2}, {&fine}), ShapeError);
  EXPECT_THROW(call({}, {}), ShapeError);
  EXPECT_EQ(fine.length(), 0);
}

}  // namespace
}  // namespace difftx
