// The differential workflow through the binary, with a real tokenizer (the Mistral fixture in
// ../shared): convert-diff-transformer (with --debug), generate, eval.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>

#include "io/json_file.h"
#include "kernels/backend.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
using test::TempDir;
namespace fs = std::filesystem;

class WorkflowCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_text(dir_ / "config.json", R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
      "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "vocab_size": 32000, "max_position_embeddings": 1024, "rms_norm_eps": 1e-5,
      "rope_theta": 10000.0, "sliding_window": null, "tie_word_embeddings": true, "initializer_range": 0.5,
      "bos_token_id": 1, "eos_token_id": 2})");
    auto r = run_difftx({"init", "--config", (dir_ / "config.json").string(), "--out", (dir_ / "base").string(),
                         "--seed", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const fs::path tok = fs::path(DIFFTX_SHARED_DIR) / "fixtures" / "tokenizers" / "mistral";
    fs::copy_file(tok / "tokenizer.json", dir_ / "base" / "tokenizer.json");
    fs::copy_file(tok / "tokenizer_config.json", dir_ / "base" / "tokenizer_config.json");
    test::write_text(dir_ / "cfg.yml", "base_model: " + (dir_ / "base").string() + "\noutput_dir: " +
                                           (dir_ / "out").string() + "\n");
  }
  ordered_json convert(std::vector<std::string> flags, const std::string& out) {
    std::vector<std::string> args = {"convert-diff-transformer", (dir_ / "cfg.yml").string(), "--debug", "--json",
                                     "--output-dir", (dir_ / out).string()};
    args.insert(args.end(), flags.begin(), flags.end());
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json_parse(r.out, "convert --json");
  }
  TempDir dir_;
};

TEST_F(WorkflowCliTest, DebugMatchesOnlyForZeroInitWithoutSublayerNorm) {
  auto zero = convert({"--zero-init", "--no-sublayer-norm"}, "zero");
  EXPECT_EQ(zero["debug"]["match"], true);
  EXPECT_EQ(zero["debug"]["match_expected"], true);
  EXPECT_EQ(zero["debug"]["base_ids"].size(), 20u);
  EXPECT_EQ(zero["debug"]["base_text"].get<std::string>().rfind("The quick brown fox", 0), 0u);
  auto plain = convert({}, "plain");
  EXPECT_EQ(plain["debug"]["match"], false);
  EXPECT_EQ(plain["debug"]["match_expected"], false);
  auto split = convert({"--split-heads"}, "split");
  EXPECT_EQ(split["debug"]["match_expected"], false);
  auto text = run_difftx({"convert-diff-transformer", (dir_ / "cfg.yml").string(), "--debug", "--output-dir",
                          (dir_ / "text").string()});
  EXPECT_NE(text.out.find("no match (expected"), std::string::npos) << text.out;
  EXPECT_TRUE(fs::exists(dir_ / "zero" / "tokenizer.json"));
}

TEST_F(WorkflowCliTest, GenerateStreamsTheSameTokensWithAndWithoutCache) {
  convert({}, "diff");
  for (const char* model : {"base", "diff"}) {
    auto cached = run_difftx({"generate", (dir_ / model).string(), "--prompt", "Once upon a time", "--max-new-tokens", "12"});
    auto plain = run_difftx({"generate", (dir_ / model).string(), "--prompt", "Once upon a time", "--max-new-tokens",
                             "12", "--no-cache"});
    ASSERT_EQ(cached.exit_code, 0) << cached.err;
    EXPECT_EQ(cached.out, plain.out);
    EXPECT_EQ(cached.out.rfind("Once upon a time", 0), 0u);
    EXPECT_GT(cached.out.size(), std::string("Once upon a time\n").size());
    EXPECT_NE(cached.err.find("tokens/s"), std::string::npos);
    EXPECT_NE(plain.err.find("without KV cache"), std::string::npos);
  }
  auto sampled = run_difftx({"generate", (dir_ / "diff").string(), "--prompt", "Hi", "--temperature", "0.8",
                             "--top-k", "40", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "5"});
  EXPECT_EQ(sampled.exit_code, 0) << sampled.err;
  auto bad = run_difftx({"generate", (dir_ / "diff").string(), "--prompt", "Hi", "--top-p", "1.5"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--top-p"), std::string::npos);
  // Penalties through the CLI (their formulas: tests/infer/generate_test.cpp), and their ranges.
  auto penalised = run_difftx({"generate", (dir_ / "diff").string(), "--prompt", "Once upon a time", "--max-new-tokens",
                               "12", "--repetition-penalty", "5", "--frequency-penalty", "2", "--presence-penalty", "2"});
  ASSERT_EQ(penalised.exit_code, 0) << penalised.err;
  EXPECT_EQ(penalised.out.rfind("Once upon a time", 0), 0u);
  for (auto [option, value] : {std::pair{"--repetition-penalty", "0"}, {"--frequency-penalty", "2.5"},
                               {"--presence-penalty", "-3"}}) {
    auto out_of_range = run_difftx({"generate", (dir_ / "diff").string(), "--prompt", "Hi", option, value});
    EXPECT_EQ(out_of_range.exit_code, 2);
    EXPECT_NE(out_of_range.err.find(std::string(option) + " must be"), std::string::npos) << out_of_range.err;
  }
  // An empty number is refused in every command (CLI11 alone reads it as 0).
  for (const char* option : {"--frequency-penalty", "--top-p", "--max-new-tokens"}) {
    auto empty = run_difftx({"generate", (dir_ / "diff").string(), "--prompt", "Hi", option, ""});
    EXPECT_EQ(empty.exit_code, 2) << option;
    EXPECT_NE(empty.err.find(std::string(option) + ": an empty value; expected a number"), std::string::npos)
        << empty.err;
  }
  auto negative_seed = run_difftx({"generate", (dir_ / "diff").string(), "--prompt", "Hi", "--seed", "-1"});
  EXPECT_EQ(negative_seed.exit_code, 2);
  EXPECT_NE(negative_seed.err.find("--seed: -1: the seed is a whole number from 0 to 2^64 - 1"), std::string::npos)
      << negative_seed.err;
  // 2^64 is refused, not clamped to 2^64 - 1 (CLI11 alone clamps it), in every command with a seed.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"generate", (dir_ / "diff").string(), "--prompt", "Hi"},
        {"init", "--config", (dir_ / "config.json").string(), "--out", (dir_ / "never").string()},
        {"convert-diff-transformer", (dir_ / "cfg.yml").string(), "--output-dir", (dir_ / "never").string()}}) {
    for (const char* seed : {"18446744073709551616", "-1", "1e3", "+5"}) {
      args.insert(args.end(), {"--seed", seed});
      auto r = run_difftx(args);
      EXPECT_EQ(r.exit_code, 2) << args[0] << " --seed " << seed;
      EXPECT_NE(r.err.find(std::string(seed) + ": the seed is a whole number from 0 to 2^64 - 1"), std::string::npos)
          << r.err;
      args.resize(args.size() - 2);
    }
  }
  EXPECT_FALSE(fs::exists(dir_ / "never"));
  auto no_tok = run_difftx({"generate", (dir_ / "base").string(), "--prompt", "Hi", "--tokenizer", dir_.path().string()});
  EXPECT_EQ(no_tok.exit_code, 2);
  EXPECT_NE(no_tok.err.find("tokenizer.json"), std::string::npos) << no_tok.err;
}

TEST_F(WorkflowCliTest, HostilePathsAndValuesGetClearErrors) {
  // A symlink loop as model, tokenizer and output directory.
  fs::create_directory_symlink(dir_ / "loop", dir_ / "loop");
  for (std::vector<std::string> args :
       {std::vector<std::string>{"generate", (dir_ / "loop").string(), "--prompt", "hi"},
        {"eval", (dir_ / "loop").string(), "--text", (dir_ / "cfg.yml").string()},
        {"tokenize", "--tokenizer", (dir_ / "loop").string(), "hi"},
        {"convert-diff-transformer", (dir_ / "cfg.yml").string(), "--output-dir", (dir_ / "loop" / "x").string()}}) {
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  }
  // A FIFO as config.json must not block; /dev/zero as a text file must not be read forever.
  test::copy_tree(dir_ / "base", dir_ / "fifo");
  fs::remove(dir_ / "fifo" / "config.json");
  ASSERT_EQ(::mkfifo((dir_ / "fifo" / "config.json").c_str(), 0600), 0);
  auto fifo = run_difftx({"inspect", (dir_ / "fifo").string()});
  EXPECT_EQ(fifo.exit_code, 2);
  EXPECT_NE(fifo.err.find("not a regular file"), std::string::npos) << fifo.err;
  auto zero = run_difftx({"eval", (dir_ / "base").string(), "--text", "/dev/zero"});
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_NE(zero.err.find("/dev/zero"), std::string::npos) << zero.err;
  // Generation options are checked before the model loads or the prompt is printed.
  auto top_p = run_difftx({"generate", (dir_ / "base").string(), "--prompt", "Hi", "--top-p", "2"});
  EXPECT_EQ(top_p.exit_code, 2);
  EXPECT_TRUE(top_p.out.empty()) << top_p.out;
  auto bad_prompt = run_difftx({"generate", (dir_ / "base").string(), "--prompt", std::string("a\xff")});
  EXPECT_EQ(bad_prompt.exit_code, 2);
  EXPECT_NE(bad_prompt.err.find("--prompt"), std::string::npos) << bad_prompt.err;
  // Duplicate YAML keys (yaml-cpp keeps the first, PyYAML the last): refused.
  test::write_text(dir_ / "dup.yml", "base_model: " + (dir_ / "base").string() + "\nbase_model: elsewhere\noutput_dir: o\n");
  auto dup = run_difftx({"convert-diff-transformer", (dir_ / "dup.yml").string()});
  EXPECT_EQ(dup.exit_code, 2);
  EXPECT_NE(dup.err.find("appears twice"), std::string::npos) << dup.err;
  // A YAML that is not UTF-8 (here Latin-1 "é" in a comment on line 3) names the byte and line.
  test::write_text(dir_ / "latin1.yml",
                   "base_model: " + (dir_ / "base").string() + "\noutput_dir: o\n# caf\xe9\n");
  auto latin1 = run_difftx({"convert-diff-transformer", (dir_ / "latin1.yml").string()});
  EXPECT_EQ(latin1.exit_code, 2);
  EXPECT_NE(latin1.err.find("latin1.yml:3: byte "), std::string::npos) << latin1.err;
  EXPECT_NE(latin1.err.find("(0xE9) is not valid UTF-8"), std::string::npos) << latin1.err;
  // --overwrite never deletes the base model: an output directory holding it is refused.
  test::write_text(dir_ / "up.yml", "base_model: " + (dir_ / "base").string() + "\noutput_dir: " + dir_.path().string() + "\n");
  auto up = run_difftx({"convert-diff-transformer", (dir_ / "up.yml").string(), "--overwrite"});
  EXPECT_EQ(up.exit_code, 2);
  EXPECT_TRUE(fs::exists(dir_ / "base" / "model.safetensors"));
  auto unknown = run_difftx({"nosuchcmd"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command \"nosuchcmd\""), std::string::npos) << unknown.err;
  auto empty_out = run_difftx({"init", "--config", (dir_ / "config.json").string(), "--out", ""});
  EXPECT_EQ(empty_out.exit_code, 2);
  EXPECT_NE(empty_out.err.find("empty"), std::string::npos) << empty_out.err;
}

TEST_F(WorkflowCliTest, APaddedVocabularyGeneratesAndDecodes) {
  // Models often have more embedding rows than tokenizer ids (Qwen2.5: 151936 vs 151665).
  auto config = json_read_file(dir_ / "config.json");
  config["vocab_size"] = 32064;
  json_write_file(dir_ / "padded.json", config);
  ASSERT_EQ(run_difftx({"init", "--config", (dir_ / "padded.json").string(), "--out", (dir_ / "padded").string()}).exit_code, 0);
  fs::copy_file(dir_ / "base" / "tokenizer.json", dir_ / "padded" / "tokenizer.json");
  auto r = run_difftx({"generate", (dir_ / "padded").string(), "--prompt", "Hi", "--temperature", "1", "--seed", "2",
                       "--max-new-tokens", "300"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The opposite mismatch: a prompt id beyond the model's vocabulary names both.
  config["vocab_size"] = 1000;
  json_write_file(dir_ / "small.json", config);
  ASSERT_EQ(run_difftx({"init", "--config", (dir_ / "small.json").string(), "--out", (dir_ / "small").string()}).exit_code, 0);
  auto small = run_difftx({"generate", (dir_ / "small").string(), "--tokenizer", (dir_ / "base").string(), "--prompt",
                           "zebra crossing"});
  EXPECT_EQ(small.exit_code, 2);
  EXPECT_NE(small.err.find("does not match the model"), std::string::npos) << small.err;
  EXPECT_TRUE(small.out.empty());
}

TEST_F(WorkflowCliTest, EvalReportsPerplexity) {
  convert({}, "diff");
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The quick brown fox jumps over the lazy dog. ";
  test::write_text(dir_ / "t.txt", text);
  auto r = run_difftx({"eval", (dir_ / "diff").string(), "--text", (dir_ / "t.txt").string(), "--context", "64",
                       "--stride", "32", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = json_parse(r.out, "eval --json");
  EXPECT_GT(j["tokens"].get<int64_t>(), 300);
  EXPECT_EQ(j["scored_tokens"].get<int64_t>(), j["tokens"].get<int64_t>() - 1);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(j["mean_loss"].get<double>()), 1e-6 * j["perplexity"].get<double>());
  test::write_bytes(dir_ / "bad.txt", {'a', 0xff, 'b'});
  auto bad = run_difftx({"eval", (dir_ / "diff").string(), "--text", (dir_ / "bad.txt").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad.txt"), std::string::npos) << bad.err;
  auto stride = run_difftx({"eval", (dir_ / "diff").string(), "--text", (dir_ / "t.txt").string(), "--context", "8",
                            "--stride", "9"});
  EXPECT_EQ(stride.exit_code, 2);
  // Without --stride, half the context: the same report as --stride 32 for --context 64.
  auto half = run_difftx({"eval", (dir_ / "diff").string(), "--text", (dir_ / "t.txt").string(), "--context", "64",
                          "--json"});
  ASSERT_EQ(half.exit_code, 0) << half.err;
  ordered_json same = json_parse(half.out, "eval --json"), before = j;
  for (ordered_json* x : {&same, &before})
    for (const char* timing : {"seconds", "tokens_per_second"}) x->erase(timing);
  EXPECT_EQ(same, before);
}

// eval --kl-base: the conversion-quality report. A conversion that keeps the base function has
// (numerically) zero divergence and the same top-1 everywhere; the seed's default conversion does not;
// models with different vocabularies are refused.
TEST_F(WorkflowCliTest, EvalKlBaseReportsTheConversionsDivergence) {
  convert({"--zero-init", "--no-sublayer-norm"}, "zero");
  convert({}, "diff");
  std::string text;
  for (int i = 0; i < 30; ++i) text += "It was the best of times, it was the worst of times. ";
  test::write_text(dir_ / "t.txt", text);
  auto kl = [&](const std::string& model) {
    auto r = run_difftx({"eval", (dir_ / model).string(), "--text", (dir_ / "t.txt").string(), "--context", "64",
                         "--stride", "32", "--kl-base", (dir_ / "base").string(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json_parse(r.out, "eval --kl-base --json");
  };
  const ordered_json zero = kl("zero"), diff = kl("diff");
  EXPECT_LT(zero["kld_max"].get<double>(), 1e-9);
  EXPECT_EQ(zero["same_top1"].get<double>(), 1.0);
  EXPECT_NEAR(zero["mean_loss"].get<double>(), zero["base_mean_loss"].get<double>(), 1e-6);
  EXPECT_GT(diff["kld_mean"].get<double>(), 1e-3);
  EXPECT_LE(diff["kld_median"].get<double>(), diff["kld_p99_9"].get<double>());
  EXPECT_LE(diff["kld_p99_9"].get<double>(), diff["kld_max"].get<double>());
  EXPECT_EQ(diff["base_mean_loss"], zero["base_mean_loss"]);  // the same base on the same windows
  EXPECT_EQ(diff["scored_tokens"].get<int64_t>(), diff["tokens"].get<int64_t>() - 1);
  // The text report names both columns and the statistics.
  auto plain = run_difftx({"eval", (dir_ / "diff").string(), "--text", (dir_ / "t.txt").string(), "--context", "64",
                           "--stride", "64", "--kl-base", (dir_ / "base").string()});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  for (const char* s : {"base", "KLD", "same top-1", "RMS delta p"})
    EXPECT_NE(plain.out.find(s), std::string::npos) << s << "\n" << plain.out;
  // A base with another vocabulary, and one that is not a model directory.
  const fs::path golden = fs::path(DIFFTX_SOURCE_DIR) / "tests" / "golden" / "llama_mha";
  auto other = run_difftx({"eval", (dir_ / "diff").string(), "--text", (dir_ / "t.txt").string(), "--kl-base",
                           golden.string()});
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("vocabulary has 96 entries"), std::string::npos) << other.err;
  auto missing = run_difftx({"eval", (dir_ / "diff").string(), "--text", (dir_ / "t.txt").string(), "--kl-base",
                             (dir_ / "nowhere").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nowhere"), std::string::npos) << missing.err;
}

// --weight-dtype bf16 on the embedded model (a BF16 checkpoint, so keeping its matrices in bf16
// loses nothing): forward, generate and eval agree with float32; other values are refused.
TEST(WeightDtypeCli, Bf16OnABf16CheckpointAgreesWithFloat32) {
  const std::string model = (fs::path(DIFFTX_SOURCE_DIR) / "examples" / "models" / "wp-llama-12m").string();
  auto fwd = [&](const std::string& dtype) {
    auto r = run_difftx({"forward", model, "--ids", "1,415,1296,2763,28725,369", "--top", "4", "--json",
                         "--weight-dtype", dtype});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json_parse(r.out, "forward --json");
  };
  const ordered_json a = fwd("f32"), b = fwd("bf16");
  ASSERT_EQ(a.size(), 6u);
  for (size_t t = 0; t < a.size(); ++t)
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(a[t]["top"][i]["id"], b[t]["top"][i]["id"]) << "position " << t;
      EXPECT_NEAR(a[t]["top"][i]["logit"].get<double>(), b[t]["top"][i]["logit"].get<double>(), 1e-4);
    }
  auto gen = [&](const std::string& dtype) {
    auto r = run_difftx({"generate", model, "--prompt", "Pierre looked at", "--max-new-tokens", "24",
                         "--weight-dtype", dtype});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  const std::string text = gen("f32");
  EXPECT_GT(text.size(), std::string("Pierre looked at").size() + 40);
  EXPECT_EQ(gen("bf16"), text);
  auto eval = [&](const std::string& dtype) {
    auto r = run_difftx({"eval", model, "--text", (fs::path(DIFFTX_SOURCE_DIR) / "README.md").string(), "--max-tokens",
                         "300", "--json", "--weight-dtype", dtype});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const ordered_json j = json_parse(r.out, "eval --json");
    EXPECT_EQ(j["weight_dtype"], dtype);  // the output says which weights made the number
    return j["mean_loss"].get<double>();
  };
  EXPECT_NEAR(eval("bf16"), eval("f32"), 1e-5);
  auto bad = run_difftx({"generate", model, "--prompt", "x", "--weight-dtype", "f16"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--weight-dtype"), std::string::npos) << bad.err;
  EXPECT_TRUE(bad.out.empty());
}

// --compute-dtype bf16 on the embedded model: bf16 products move the logits a little (the same
// top tokens), eval says which backend ran; where oneDNN is kept from bf16 (DNNL_MAX_CPU_ISA=AVX2)
// it warns and gives float32's output; a GPU refuses weights and products of different types.
TEST(ComputeDtypeCli, Bf16ProductsOnTheCpu) {
  const std::string model = (fs::path(DIFFTX_SOURCE_DIR) / "examples" / "models" / "wp-llama-12m").string();
  const std::vector<std::string> ids = {"forward", model, "--ids", "1,415,1296,2763,28725,369", "--top", "3", "--json"};
  const auto forward = [&](const std::string& dtype, const std::vector<std::string>& env) {
    std::vector<std::string> args = ids;
    args.insert(args.end(), {"--compute-dtype", dtype});
    return test::run_program(test::difftx_binary(), args, env);
  };
  // Kept to AVX2, bf16 falls back: one warning and exactly float32's output under the same limit.
  const auto avx2_bf16 = forward("bf16", {"DNNL_MAX_CPU_ISA=AVX2"}), avx2_f32 = forward("f32", {"DNNL_MAX_CPU_ISA=AVX2"});
  ASSERT_EQ(avx2_bf16.exit_code, 0) << avx2_bf16.err;
  EXPECT_NE(avx2_bf16.err.find("no native bf16 matrix products"), std::string::npos) << avx2_bf16.err;
  EXPECT_EQ(avx2_bf16.out, avx2_f32.out);
  auto gpu = run_difftx({"forward", model, "--ids", "1", "--device", "cuda", "--weight-dtype", "f32", "--compute-dtype",
                         "bf16"});
  EXPECT_EQ(gpu.exit_code, 2);
  EXPECT_NE(gpu.err.find("on a GPU the two must agree"), std::string::npos) << gpu.err;
  auto bad = run_difftx({"forward", model, "--ids", "1", "--compute-dtype", "fp8"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--compute-dtype"), std::string::npos) << bad.err;
  if (!cpu_has_native_bf16()) GTEST_SKIP() << "no native bf16 products on this CPU (the fallback was checked)";
  const auto f32 = forward("f32", {}), bf16 = forward("bf16", {});
  ASSERT_EQ(bf16.exit_code, 0) << bf16.err;
  const ordered_json a = json_parse(f32.out, "f32"), b = json_parse(bf16.out, "bf16");
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    EXPECT_EQ(a[t]["top"][0]["id"], b[t]["top"][0]["id"]) << "position " << t;
    for (size_t i = 0; i < 3; ++i)
      worst = std::max(worst, std::abs(a[t]["top"][i]["logit"].get<double>() - b[t]["top"][i]["logit"].get<double>()));
  }
  EXPECT_GT(worst, 1e-4) << "bf16 products round";
  EXPECT_LT(worst, 0.25) << "bf16 products stay near float32";
  auto eval = run_difftx({"eval", model, "--text", (fs::path(DIFFTX_SOURCE_DIR) / "README.md").string(), "--max-tokens",
                          "300", "--compute-dtype", "bf16", "--json"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const ordered_json j = json_parse(eval.out, "eval");
  EXPECT_EQ(j["device"], "cpu (bf16)");
  EXPECT_EQ(j["weight_dtype"], "bf16");  // auto follows the compute dtype on the CPU
}

// A model directory that does not exist is named as such by every inference command (the
// tokenizer is read from it too, but the model is what the user pointed at).
TEST(InferenceCli, MissingModelDirectoryIsNamed) {
  const std::string missing = (fs::temp_directory_path() / "difftx-no-such-model-dir").string();
  const std::vector<std::vector<std::string>> commands = {
      {"forward", missing, "--ids", "1,2"},
      {"generate", missing, "--prompt", "x"},
      {"eval", missing, "--text", (fs::path(DIFFTX_SOURCE_DIR) / "README.md").string()}};
  for (const auto& args : commands) {
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 2) << args[0];
    EXPECT_NE(r.err.find(missing + ": not a model directory"), std::string::npos) << args[0] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << args[0];
  }
  auto tok = run_difftx({"tokenize", "--tokenizer", missing, "x"});
  EXPECT_EQ(tok.exit_code, 2);
  EXPECT_NE(tok.err.find(missing + ": not a tokenizer directory"), std::string::npos) << tok.err;
}

}  // namespace
}  // namespace difftx
