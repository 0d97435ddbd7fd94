// BatchDecoder on the embedded model: a request yields the same tokens alone or batched with
// others (greedy and seeded sampling, more requests than slots, prompts longer than a prefill
// chunk), the queue bound, cancellation, the context cap and the requests it refuses.
#include "infer/batch_decoder.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"
#include "infer/generate.h"
#include "model/model_dir.h"

namespace difftx {
namespace {

const Model& embedded() {
  static const Model model = model_load(std::string(DIFFTX_SOURCE_DIR) + "/examples/models/wp-llama-12m");
  return model;
}

DecodeRequest request(std::vector<int32_t> prompt, int64_t max_new, float temperature = 0.0f, uint64_t seed = 0) {
  DecodeRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = max_new;
  r.sampling.temperature = temperature;
  r.sampling.top_k = temperature > 0 ? 40 : 0;
  r.sampling.seed = seed;
  r.stop_ids = {2};
  return r;
}

std::vector<int32_t> read_all(Sequence& s) {
  std::vector<int32_t> ids;
  while (s.next(ids)) {
  }
  return ids;
}

// Distinct prompts of different lengths (one longer than the prefill chunk of 8 used below).
std::vector<DecodeRequest> requests(float temperature) {
  std::vector<DecodeRequest> out;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> prompt = {1};
    for (int t = 0; t < 3 + 4 * i; ++t) prompt.push_back(100 + (37 * i + 11 * t) % 3000);
    out.push_back(request(prompt, 12 + i, temperature, 1000 + i));
  }
  return out;
}

void expect_alone_equals_batched(float temperature) {
  const auto reqs = requests(temperature);
  std::vector<std::vector<int32_t>> alone;
  {
    BatchDecoder decoder(embedded(), 3, 64, 16, 8);
    for (const DecodeRequest& r : reqs) alone.push_back(read_all(*decoder.submit(r)));
  }
  BatchDecoder decoder(embedded(), 3, 64, 16, 8);  // 6 requests on 3 slots: half of them queue
  std::vector<std::shared_ptr<Sequence>> running;
  for (const DecodeRequest& r : reqs) running.push_back(decoder.submit(r));
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_NE(running[i], nullptr);
    const std::vector<int32_t> batched = read_all(*running[i]);
    EXPECT_EQ(batched, alone[i]) << "request " << i;
    EXPECT_FALSE(batched.empty());
    EXPECT_NE(running[i]->finish_reason(), FinishReason::error) << running[i]->error();
  }
  const BatchDecoderStats s = decoder.stats();
  EXPECT_EQ(s.requests_finished, 6);
  EXPECT_EQ(s.active, 0);
  EXPECT_EQ(s.queued, 0);
}

TEST(BatchDecoder, GreedyAloneEqualsBatched) { expect_alone_equals_batched(0.0f); }
TEST(BatchDecoder, SeededSamplingAloneEqualsBatched) { expect_alone_equals_batched(0.8f); }

TEST(BatchDecoder, FirstTokenMatchesGenerate) {
  // The first token comes from the prompt's own forward, as in `difftx generate`.
  const DecodeRequest r = request({1, 415, 3010, 750}, 1);
  GenerateOptions g;
  g.max_new_tokens = 1;
  const GenerateResult reference = generate(embedded(), r.prompt, g);
  BatchDecoder decoder(embedded(), 2, 32, 4);
  const auto seq = decoder.submit(r);
  EXPECT_EQ(read_all(*seq), reference.new_ids);
  EXPECT_EQ(seq->finish_reason(), FinishReason::length);
  EXPECT_EQ(seq->prompt_tokens(), 4);
  EXPECT_EQ(seq->generated_tokens(), 1);
}

TEST(BatchDecoder, PenaltiesAndBiasMatchGenerate) {
  // The processors' state (the prompt's ids, the counts of generated ones) is the slot's own.
  DecodeRequest r = request({1, 415, 7782, 403, 459, 865, 272, 907, 727, 28725, 562, 272, 4949, 553, 750, 2662, 298,
                             272, 4949},
                            12);
  r.sampling.repetition_penalty = 1.3f;
  r.sampling.frequency_penalty = 0.5f;
  r.sampling.presence_penalty = 0.25f;
  r.sampling.logit_bias = {{415, 1.5f}};
  GenerateOptions g;
  g.max_new_tokens = 12;
  g.sampling = r.sampling;
  g.stop_ids = r.stop_ids;
  const GenerateResult reference = generate(embedded(), r.prompt, g);
  BatchDecoder decoder(embedded(), 2, 64, 4, 3);
  const auto other = decoder.submit(request({1, 415, 3010}, 12));  // beside a request without them
  EXPECT_EQ(read_all(*decoder.submit(r)), reference.new_ids);
  read_all(*other);
  r.sampling.logit_bias = {{32000, 1.0f}};
  EXPECT_THROW(decoder.submit(r), ConfigError);
}

TEST(BatchDecoder, ContextCapsTheNewTokens) {
  BatchDecoder decoder(embedded(), 1, 10, 4);
  DecodeRequest r = request({1, 300, 301, 302, 303, 304}, 100);
  r.stop_ids.clear();
  const auto seq = decoder.submit(r);
  EXPECT_EQ(read_all(*seq).size(), 4u);  // 6 prompt tokens + 4 = the context of 10
  EXPECT_EQ(seq->finish_reason(), FinishReason::length);
}

TEST(BatchDecoder, QueueBoundAndCancellation) {
  BatchDecoder decoder(embedded(), 1, 512, 1);
  DecodeRequest long_one = request({1, 500, 501}, 400);
  long_one.stop_ids.clear();
  const auto running = decoder.submit(long_one);
  std::vector<int32_t> first;
  ASSERT_TRUE(running->next(first));  // it holds the only slot now
  const auto queued = decoder.submit(long_one);
  ASSERT_NE(queued, nullptr);
  EXPECT_EQ(decoder.submit(long_one), nullptr);  // the queue of 1 is full
  EXPECT_EQ(decoder.stats().requests_rejected, 1);
  queued->cancel();  // gone before it started
  running->cancel();
  read_all(*running);
  read_all(*queued);
  EXPECT_EQ(running->finish_reason(), FinishReason::cancelled);
  EXPECT_EQ(queued->finish_reason(), FinishReason::cancelled);
  EXPECT_LT(running->generated_tokens(), 400);
  // The slot is free again.
  const auto next = decoder.submit(request({1, 7}, 3));
  ASSERT_NE(next, nullptr);
  EXPECT_FALSE(read_all(*next).empty());
}

TEST(BatchDecoder, RefusesRequestsThatCanNeverRun) {
  BatchDecoder decoder(embedded(), 1, 8, 4);
  EXPECT_THROW(decoder.submit(request({}, 4)), ConfigError);
  EXPECT_THROW(decoder.submit(request({1, 2, 3, 4, 5, 6, 7, 8}, 4)), ConfigError);  // no room for a new token
  EXPECT_THROW(decoder.submit(request({1, 2}, 0)), ConfigError);
  EXPECT_THROW(decoder.submit(request({1, 32000}, 2)), ConfigError);
  DecodeRequest bad = request({1, 2}, 2);
  bad.sampling.top_p = 0;
  EXPECT_THROW(decoder.submit(bad), ConfigError);
  EXPECT_THROW(BatchDecoder(embedded(), 0, 8, 4), ConfigError);
  EXPECT_THROW(BatchDecoder(embedded(), 1, 1, 4), ConfigError);
}

TEST(BatchDecoder, StopIdEndsTheSequence) {
  BatchDecoder decoder(embedded(), 2, 64, 4);
  const DecodeRequest probe = request({1, 415, 3010}, 6);
  const std::vector<int32_t> ids = read_all(*decoder.submit(probe));
  ASSERT_GE(ids.size(), 3u);
  DecodeRequest stopping = probe;
  stopping.stop_ids = {ids[2]};
  const auto seq = decoder.submit(stopping);
  const std::vector<int32_t> got = read_all(*seq);
  EXPECT_EQ(got.back(), ids[2]);
  EXPECT_LE(got.size(), 3u);
  EXPECT_EQ(seq->finish_reason(), FinishReason::stop);
}

}  // namespace
}  // namespace difftx
