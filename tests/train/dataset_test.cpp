// Datasets, tokenization as axolotl does it, validation split, micro-batches and packing.
#include "train/data_stream.h"
#include "train/dataset.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "kernels/cpu/cross_entropy.h"
#include "test_util.h"
#include "train/batches.h"

namespace difftx {
namespace {

namespace fs = std::filesystem;

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = std::make_unique<Tokenizer>(Tokenizer::load(fs::path(DIFFTX_SHARED_DIR) / "fixtures/tokenizers/mistral"));
    config_.yaml_path = dir_ / "c.yml";
    config_.sequence_len = 64;
  }
  std::vector<Sample> load(const std::string& name, const std::string& text, DatasetType type) {
    test::write_text(dir_ / name, text);
    config_.datasets = {DatasetSpec{(dir_ / name).string(), type}};
    report_ = {};
    return load_samples(config_, config_.datasets, *tok_, report_);
  }
  test::TempDir dir_;
  std::unique_ptr<Tokenizer> tok_;
  TrainConfig config_;
  DatasetReport report_;
};

TEST_F(DatasetTest, AlpacaPromptIsAxolotlsText) {
  EXPECT_EQ(alpaca_prompt("Add 2 and 3.", ""),
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nAdd 2 and 3.\n\n### Response:\n");
  EXPECT_EQ(alpaca_prompt("Add.", "2, 3"),
            "Below is an instruction that describes a task, paired with an input that provides further context. Write "
            "a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n2, 3\n\n"
            "### Response:\n");
}

TEST_F(DatasetTest, AlpacaTrainsOnTheResponseOnly) {
  auto s = load("a.jsonl", R"({"instruction": "Say hi.", "input": "", "output": "Hi there"})" "\n", DatasetType::alpaca);
  ASSERT_EQ(s.size(), 1u);
  EncodeOptions with_bos;
  with_bos.add_special_tokens = true;
  const auto prompt = tok_->encode(alpaca_prompt("Say hi.", ""), with_bos);
  auto response = tok_->encode("Hi there", with_bos);
  response.erase(response.begin());  // BOS stripped
  response.push_back(*tok_->eos_id());
  std::vector<int32_t> expected = prompt;
  expected.insert(expected.end(), response.begin(), response.end());
  EXPECT_EQ(s[0].ids, expected);
  for (size_t i = 0; i < prompt.size(); ++i) EXPECT_EQ(s[0].labels[i], kIgnoreIndex);
  for (size_t i = prompt.size(); i < expected.size(); ++i) EXPECT_EQ(s[0].labels[i], expected[i]);
  config_.train_on_inputs = true;
  auto all = load("b.jsonl", R"({"instruction": "Say hi.", "output": "Hi there"})" "\n", DatasetType::alpaca);
  EXPECT_EQ(all[0].labels, all[0].ids);
}

TEST_F(DatasetTest, CompletionSplitsLongTextsAndTxtFilesAreLines) {
  std::string long_text;
  for (int i = 0; i < 60; ++i) long_text += "The quick brown fox jumps over the lazy dog. ";
  auto s = load("c.jsonl", nlohmann::json({{"text", long_text}}).dump() + "\n", DatasetType::completion);
  ASSERT_GT(s.size(), 2u);
  for (const auto& x : s) {
    EXPECT_LE(x.ids.size(), 64u);
    EXPECT_EQ(x.labels, x.ids);
  }
  EXPECT_EQ(s[0].ids[0], *tok_->bos_id());
  EXPECT_EQ(s.back().ids.back(), *tok_->eos_id());
  auto lines = load("d.txt", "first line\n\n  \nsecond line\n", DatasetType::completion);
  EXPECT_EQ(lines.size(), 2u);
  EXPECT_EQ(report_.records, 2);
}

TEST_F(DatasetTest, ChatTemplateTrainsOnAssistantTurns) {
  config_.chat_template = "mistral";
  auto s = load("e.jsonl",
                R"({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]})"
                "\n",
                DatasetType::chat_template);
  ASSERT_EQ(s.size(), 1u);
  std::string trained;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < s[0].ids.size(); ++i)
    if (s[0].labels[i] != kIgnoreIndex) ids.push_back(s[0].ids[i]);
  // The assistant turn " 4" and its end, nothing of the user turn.
  EXPECT_EQ(tok_->id_to_tokens(ids), (std::vector<std::string>{"\u2581", "4", "</s>"}));
}

TEST_F(DatasetTest, DropsAndReportsLongAndUntrainedSamples) {
  std::string big(2000, 'x');
  auto s = load("f.jsonl",
                R"({"instruction": "ok", "output": "fine"})" "\n" +
                    nlohmann::json({{"instruction", big}, {"output", "y"}}).dump() + "\n" +
                    R"({"instruction": "no answer", "output": ""})" "\n",
                DatasetType::alpaca);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(report_.records, 3);
  EXPECT_EQ(report_.dropped_long, 1);
  EXPECT_EQ(report_.dropped_untrained, 1);
}

TEST_F(DatasetTest, BadRecordsNameFileAndLine) {
  try {
    load("g.jsonl", R"({"instruction": "ok", "output": "fine"})" "\n" R"({"instruction": 3, "output": "x"})" "\n",
         DatasetType::alpaca);
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("g.jsonl:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"instruction\""), std::string::npos) << e.what();
  }
  test::write_bytes(dir_ / "h.jsonl", {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', 0xff, '"', '}', '\n'});
  config_.datasets = {DatasetSpec{(dir_ / "h.jsonl").string(), DatasetType::completion}};
  EXPECT_THROW(load_samples(config_, config_.datasets, *tok_, report_), Error);
  EXPECT_THROW(load("i.jsonl", "\n", DatasetType::alpaca), ConfigError);  // nothing usable
  config_.datasets = {DatasetSpec{(dir_ / "absent.jsonl").string(), DatasetType::alpaca}};
  EXPECT_THROW(load_samples(config_, config_.datasets, *tok_, report_), ConfigError);
}

TEST(Split, ValidationIsSeededAndSized) {
  std::vector<Sample> a(20), b(20);
  for (int i = 0; i < 20; ++i) a[i].ids = b[i].ids = {i};
  auto va = split_validation(a, 0.1, 7, "a.yml"), vb = split_validation(b, 0.1, 7, "b.yml");
  ASSERT_EQ(va.size(), 2u);
  EXPECT_EQ(a.size(), 18u);
  EXPECT_EQ(va[0].ids, vb[0].ids);
  std::vector<Sample> c(20);
  EXPECT_EQ(split_validation(c, 5, 7, "c.yml").size(), 5u);
  try {  // no training sample left: the message names the config file and the counts
    split_validation(c, 100, 7, "c.yml");
    FAIL() << "no training sample left";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.yml: val_set_size 100 takes all 15 samples for validation"), std::string::npos)
        << e.what();
  }
  std::vector<Sample> d(3);
  EXPECT_THROW(split_validation(d, 0.9, 7, "d.yml"), ConfigError);  // ceil(2.7) = 3 of 3
  EXPECT_EQ(d.size(), 3u) << "the samples are left as they were";
}

TEST(Batches, PackingMarksDocumentsAndTargets) {
  TrainConfig c;
  c.sequence_len = 10;
  c.micro_batch_size = 2;
  c.sample_packing = true;
  std::vector<Sample> s(3);
  s[0].ids = {1, 2, 3, 4};
  s[0].labels = {kIgnoreIndex, kIgnoreIndex, 3, 4};
  s[1].ids = {5, 6, 7};
  s[1].labels = {5, 6, 7};
  s[2].ids = {8, 9, 10, 11, 12};
  s[2].labels = {8, 9, 10, 11, 12};
  auto mbs = make_micro_batches(s, c, 0, 0, /*shuffle=*/false);
  ASSERT_EQ(mbs.size(), 1u);
  const auto& t = mbs[0].tokens;
  EXPECT_EQ(t.batch, 2);  // [s0 s1] and [s2]: 4 + 3 fit in 10, + 5 does not
  EXPECT_EQ(t.seq_len, 7);
  EXPECT_EQ(t.segment_ids, (std::vector<int32_t>{1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(t.position_ids, (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4, 0, 0}));
  // Position t predicts label t+1; never across a document end.
  EXPECT_EQ(mbs[0].targets, (std::vector<int32_t>{kIgnoreIndex, 3, 4, kIgnoreIndex, 6, 7, kIgnoreIndex, 9, 10, 11, 12,
                                                  kIgnoreIndex, kIgnoreIndex, kIgnoreIndex}));
  EXPECT_EQ(mbs[0].target_count, 8);
  c.sample_packing = false;
  c.pad_to_sequence_len = true;
  auto padded = make_micro_batches(s, c, 0, 99, false);
  ASSERT_EQ(padded.size(), 2u);
  EXPECT_EQ(padded[0].tokens.seq_len, 10);
  EXPECT_EQ(padded[0].tokens.ids[4], 99);
  EXPECT_EQ(padded[0].tokens.attention_mask[4], 0);
  // Shuffled orders are seeded by (seed, epoch).
  c.seed = 3;
  std::vector<Sample> many(30, s[1]);
  for (int i = 0; i < 30; ++i) many[i].ids[0] = i;
  auto e0 = make_micro_batches(many, c, 0, 0, true), e0b = make_micro_batches(many, c, 0, 0, true);
  auto e1 = make_micro_batches(many, c, 1, 0, true);
  EXPECT_EQ(e0[0].tokens.ids, e0b[0].tokens.ids);
  EXPECT_NE(e0[0].tokens.ids, e1[0].tokens.ids);
}

}  // namespace
}  // namespace difftx

namespace difftx {
namespace {

// The data stream is a function of (seed, position); with world_size ranks, rank r takes the
// global micro-batches r, r + world_size, ... of the one-process stream, across epoch boundaries
// (each epoch is reshuffled), and a stream that seeks to a position continues exactly.
TEST(DataStreamTest, RanksInterleaveTheOneProcessStreamAcrossEpochs) {
  TrainConfig c;
  c.micro_batch_size = 2;
  c.sequence_len = 16;
  c.seed = 3;
  std::vector<Sample> samples;
  for (int32_t i = 0; i < 7; ++i) {  // 4 micro-batches per epoch
    Sample s;
    for (int32_t t = 0; t <= i % 3 + 2; ++t) s.ids.push_back(100 * i + t);
    s.labels = s.ids;
    samples.push_back(s);
  }
  DataStream one(samples, c, 0);
  ASSERT_EQ(one.epoch_size(), 4);
  std::vector<std::vector<int32_t>> global;
  for (int k = 0; k < 20; ++k) global.push_back(one.next().tokens.ids);
  EXPECT_EQ(one.position(), 20);
  EXPECT_DOUBLE_EQ(one.epoch(), 5.0);
  EXPECT_NE(global[0], global[4]) << "each epoch is reshuffled";
  DataStream rank0(samples, c, 0, 0, 2), rank1(samples, c, 0, 1, 2);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(rank0.next().tokens.ids, global[2 * k]) << k;
    EXPECT_EQ(rank1.next().tokens.ids, global[2 * k + 1]) << k;
  }
  EXPECT_EQ(rank0.position(), 20);
  DataStream resumed(samples, c, 0);
  resumed.seek(9);
  EXPECT_DOUBLE_EQ(resumed.epoch(), 2.25);
  for (int k = 9; k < 20; ++k) EXPECT_EQ(resumed.next().tokens.ids, global[k]) << k;
}

}  // namespace
}  // namespace difftx
