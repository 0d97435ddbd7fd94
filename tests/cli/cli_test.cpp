// End-to-end tests of the difftx binary on real files in temporary directories.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "io/json_file.h"
#include "kernels/cpu/blas_diagnostics.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::run_difftx;
using test::TempDir;
namespace fs = std::filesystem;

const char* kTinyConfig = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
  "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 200, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "tie_word_embeddings": false, "initializer_range": 0.2, "bos_token_id": 1, "eos_token_id": 2, "my_key": "kept"})";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { test::write_text(dir_ / "config.json", kTinyConfig); }
  fs::path make_model(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"init", "--config", (dir_ / "config.json").string(), "--out", (dir_ / name).string(),
                                     "--seed", "3"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_difftx(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir_ / name;
  }
  TempDir dir_;
};

TEST_F(CliTest, InitInspectForward) {
  fs::path model = make_model("m");
  EXPECT_TRUE(fs::exists(model / "model.safetensors"));
  auto config = json_read_file(model / "config.json");
  EXPECT_EQ(config["my_key"], "kept");
  EXPECT_EQ(config["torch_dtype"], "float32");

  auto inspect = run_difftx({"inspect", model.string()});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("model_type   llama"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("check        ok"), std::string::npos) << inspect.out;

  auto js = run_difftx({"inspect", model.string(), "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  auto info = json_parse(js.out, "inspect output");
  // embed 200*64 + lm_head 200*64 + 2 layers * (q 64*64 + k 32*64 + v 32*64 + o 64*64 + 3 * 128*64 + 2*64) + 64
  const int64_t per_layer = 4096 + 2048 + 2048 + 4096 + 3 * 8192 + 128;
  EXPECT_EQ(info["parameters"], 2 * 12800 + 2 * per_layer + 64);
  EXPECT_EQ(info["num_key_value_heads"], 2);
  EXPECT_EQ(info["sharded"], false);
  EXPECT_EQ(info["valid"], true);

  auto fwd = run_difftx({"forward", model.string(), "--ids", "1,5,7,9", "--top", "3", "--json"});
  ASSERT_EQ(fwd.exit_code, 0) << fwd.err;
  auto rows = json_parse(fwd.out, "forward output");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[2]["id"], 7);
  ASSERT_EQ(rows[2]["top"].size(), 3u);
  EXPECT_GE(rows[2]["top"][0]["logit"].get<double>(), rows[2]["top"][1]["logit"].get<double>());

  auto text = run_difftx({"forward", model.string(), "--ids", "1,5,7,9"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("tokens/s"), std::string::npos);
  // --top beyond the vocabulary (200 here) shows the whole vocabulary and says so.
  auto all = run_difftx({"forward", model.string(), "--ids", "1,5", "--top", "100000"});
  EXPECT_EQ(all.exit_code, 0) << all.err;
  EXPECT_NE(all.out.find("top-200 next tokens"), std::string::npos) << all.out.substr(0, 200);
}

TEST_F(CliTest, ShardedAndBf16OutputsLoadAndAgree) {
  fs::path plain = make_model("plain");
  fs::path sharded = make_model("sharded", {"--max-shard-size", "100KB"});
  auto index = json_read_file(sharded / "model.safetensors.index.json");
  std::set<std::string> shards;
  for (auto& [tensor, file] : index["weight_map"].items()) shards.insert(file.get<std::string>());
  EXPECT_GT(shards.size(), 2u);
  for (const auto& f : shards) {
    EXPECT_LE(fs::file_size(sharded / f), 100'000u + 4096u) << f;  // tensor data <= limit, plus the header
    EXPECT_NE(f.find("-of-"), std::string::npos);
  }
  auto info = json_parse(run_difftx({"inspect", sharded.string(), "--json"}).out, "inspect");
  EXPECT_EQ(info["sharded"], true);
  auto a = run_difftx({"forward", plain.string(), "--ids", "3,4,5", "--json"});
  auto b = run_difftx({"forward", sharded.string(), "--ids", "3,4,5", "--json"});
  ASSERT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.out, b.out);  // same seed: identical weights, identical logits

  fs::path bf = make_model("bf", {"--dtype", "bf16"});
  auto bi = json_parse(run_difftx({"inspect", bf.string(), "--json"}).out, "inspect");
  EXPECT_EQ(bi["dtypes"]["BF16"], bi["tensor_count"]);
  EXPECT_EQ(json_read_file(bf / "config.json")["torch_dtype"], "bfloat16");
}

TEST_F(CliTest, InitRefusesNonEmptyOutputAndLeavesItIntact) {
  fs::create_directories(dir_ / "busy");
  test::write_text(dir_ / "busy" / "notes.txt", "mine");
  auto r = run_difftx({"init", "--config", (dir_ / "config.json").string(), "--out", (dir_ / "busy").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_text(dir_ / "busy" / "notes.txt"), "mine");
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_.path())) ++n;
  EXPECT_EQ(n, 2u) << "no staging directory may be left behind";
  auto ok = run_difftx({"init", "--config", (dir_ / "config.json").string(), "--out", (dir_ / "busy").string(), "--overwrite"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_FALSE(fs::exists(dir_ / "busy" / "notes.txt"));
}

TEST_F(CliTest, InitWithBadConfigWritesNothing) {
  test::write_text(dir_ / "bad.json", R"({"model_type": "llama", "hidden_size": "64"})");
  auto r = run_difftx({"init", "--config", (dir_ / "bad.json").string(), "--out", (dir_ / "never").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"hidden_size\""), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "never"));
  auto d = run_difftx({"init", "--config", (dir_ / "config.json").string(), "--out", (dir_ / "never").string(), "--dtype", "int8"});
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_NE(d.err.find("--dtype"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "never"));
  auto s = run_difftx({"init", "--config", (dir_ / "config.json").string(), "--out", (dir_ / "never").string(),
                       "--max-shard-size", "0"});
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.err.find("--max-shard-size: size \"0\" is out of range (from 1 byte"), std::string::npos) << s.err;
  EXPECT_FALSE(fs::exists(dir_ / "never"));
}

TEST_F(CliTest, UsageErrorsExitWithTwo) {
  EXPECT_EQ(run_difftx({"--help"}).exit_code, 0);
  EXPECT_EQ(run_difftx({}).exit_code, 2);
  EXPECT_EQ(run_difftx({"inspect"}).exit_code, 2);
  EXPECT_EQ(run_difftx({"frobnicate"}).exit_code, 2);
  fs::path model = make_model("m");
  auto r = run_difftx({"forward", model.string(), "--ids", "1,x,3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("\"x\""), std::string::npos) << r.err;
  auto oov = run_difftx({"forward", model.string(), "--ids", "1,200"});
  EXPECT_EQ(oov.exit_code, 2);
  EXPECT_NE(oov.err.find("vocabulary"), std::string::npos) << oov.err;
}

// The warning about OpenBLAS's kernels: on commands that run the model, exactly when this machine's
// OpenBLAS falls back to kernels without the CPU's AVX2 / AVX-512 (the same library and CPU as this
// test process); never once the user names a set, never on commands that only read files.
TEST_F(CliTest, WarnsAboutGenericOpenblasKernelsOnlyWhereTheyAreSlow) {
  fs::path model = make_model("m");
  const std::string marker = "OpenBLAS runs the dense products";
  std::string expected =
      openblas_kernel_advice(openblas_corename(), std::getenv("OPENBLAS_CORETYPE"), cpu_vector_features());
  const std::vector<std::string> args = {"forward", model.string(), "--ids", "1,5,7", "--top", "5", "--json"};
  auto fwd = run_difftx(args);
  ASSERT_EQ(fwd.exit_code, 0) << fwd.err;
  if (expected.empty()) {
    EXPECT_EQ(fwd.err.find(marker), std::string::npos) << fwd.err;
  } else {
    EXPECT_NE(fwd.err.find(expected), std::string::npos) << fwd.err;
  }
  auto inspect = run_difftx({"inspect", model.string()});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(inspect.err.find(marker), std::string::npos) << inspect.err;

  // Named by the user, the generic set runs without a warning and gives the same logits (to float32
  // rounding: the kernel sets sum in different orders).
  auto named = test::run_program(DIFFTX_BINARY, args, {"OPENBLAS_CORETYPE=Prescott"});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_EQ(named.err.find(marker), std::string::npos) << named.err;
  auto a = json_parse(fwd.out, "forward output");
  auto b = json_parse(named.out, "forward output (Prescott)");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t pos = 0; pos < 3; ++pos) {
    for (size_t r = 0; r < 5; ++r) {
      EXPECT_NEAR(a[pos]["top"][r]["logit"].get<double>(), b[pos]["top"][r]["logit"].get<double>(), 1e-4)
          << "position " << pos << " rank " << r;
    }
  }
}

// --- Bad checkpoints through the CLI: exit code 2, a message naming the file and tensor or key,
// nothing on stdout, no crash.

struct Corruption {
  std::string name;
  std::function<void(const fs::path& model)> apply;
  std::vector<std::string> expected;  // substrings of the error message
};

std::vector<uint8_t> header_of(const fs::path& file, uint64_t& n) {
  auto bytes = test::read_bytes(file);
  n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  return bytes;
}

// Replaces the header text of a safetensors file, keeping the data (header length updated).
void set_header(const fs::path& file, const std::string& header) {
  uint64_t n;
  auto bytes = header_of(file, n);
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(header.size() >> (8 * i)));
  out += header;
  out.append(reinterpret_cast<const char*>(bytes.data()) + 8 + n, bytes.size() - 8 - n);
  test::write_text(file, out);
}

std::string get_header(const fs::path& file) {
  uint64_t n;
  auto bytes = header_of(file, n);
  return std::string(bytes.begin() + 8, bytes.begin() + 8 + n);
}

void replace_in_header(const fs::path& file, const std::string& from, const std::string& to) {
  std::string h = get_header(file);
  auto pos = h.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  h.replace(pos, from.size(), to);
  set_header(file, h);
}

TEST_F(CliTest, BadCheckpointsAreRejectedCleanly) {
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  std::vector<Corruption> cases = {
      {"truncated file", [](const fs::path& m) {
         auto b = test::read_bytes(m / "model.safetensors");
         b.resize(b.size() / 2);
         test::write_bytes(m / "model.safetensors", b);
       }, {"model.safetensors"}},
      {"header length past EOF", [](const fs::path& m) {
         auto b = test::read_bytes(m / "model.safetensors");
         b[5] = 0x01;  // length += 2^40
         test::write_bytes(m / "model.safetensors", b);
       }, {"model.safetensors", "header length"}},
      {"header length over the cap", [](const fs::path& m) {
         auto b = test::read_bytes(m / "model.safetensors");
         b.resize(300'000'000 / 1000);  // keep it small; length field says 200 MB
         uint64_t n = 200'000'000;
         for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
         test::write_bytes(m / "model.safetensors", b);
       }, {"model.safetensors", "limit"}},
      {"header not JSON", [](const fs::path& m) {
         std::string h = get_header(m / "model.safetensors");
         h[0] = '@';
         set_header(m / "model.safetensors", h);
       }, {"model.safetensors", "not valid JSON"}},
      {"header not an object", [](const fs::path& m) { set_header(m / "model.safetensors", "[1,2,3]"); },
       {"model.safetensors", "JSON object"}},
      {"unknown dtype", [&](const fs::path& m) {
         std::string h = get_header(m / "model.safetensors");
         auto pos = h.find(q);
         auto dt = h.find("\"F32\"", pos);
         h.replace(dt, 5, "\"Q4K\"");
         set_header(m / "model.safetensors", h);
       }, {"model.safetensors", q, "Q4K"}},
      {"shape and byte length disagree", [&](const fs::path& m) {
         replace_in_header(m / "model.safetensors", "\"shape\":[64,64]", "\"shape\":[64,63]");
       }, {"model.safetensors", "bytes"}},
      {"overlapping offsets", [&](const fs::path& m) {
         // Point the second tensor's offsets at the first tensor's bytes.
         std::string h = get_header(m / "model.safetensors");
         auto j = json_parse(h, "h");
         std::vector<std::string> names;
         for (auto& [k, v] : j.items())
           if (k != "__metadata__") names.push_back(k);
         auto first = j[names[0]]["data_offsets"];
         uint64_t len = j[names[1]]["data_offsets"][1].get<uint64_t>() - j[names[1]]["data_offsets"][0].get<uint64_t>();
         j[names[1]]["data_offsets"] = {first[0].get<uint64_t>(), first[0].get<uint64_t>() + len};
         set_header(m / "model.safetensors", j.dump());
       }, {"model.safetensors", "overlap"}},
      {"offsets out of range", [&](const fs::path& m) {
         auto j = json_parse(get_header(m / "model.safetensors"), "h");
         uint64_t end = 0;
         std::string last;
         for (auto& [k, v] : j.items())
           if (k != "__metadata__" && v["data_offsets"][1].get<uint64_t>() >= end) {
             end = v["data_offsets"][1].get<uint64_t>();
             last = k;
           }
         j[last]["data_offsets"] = {end + 64, end + 64 + (end - j[last]["data_offsets"][0].get<uint64_t>())};
         set_header(m / "model.safetensors", j.dump());
       }, {"model.safetensors", "past the end"}},
      {"tensor missing", [&](const fs::path& m) {
         auto j = json_parse(get_header(m / "model.safetensors"), "h");
         j.erase("model.norm.weight");
         // Keep the file valid: shrink nothing, but then bytes would be a hole; so rename instead.
         j = json_parse(get_header(m / "model.safetensors"), "h");
         auto v = j["model.norm.weight"];
         j.erase("model.norm.weight");
         j["model.norm.weights_typo"] = v;
         set_header(m / "model.safetensors", j.dump());
       }, {"\"model.norm.weight\"", "missing"}},
      {"tensor with the wrong shape", [&](const fs::path& m) {
         auto j = json_parse(get_header(m / "model.safetensors"), "h");
         j[q]["shape"] = {32, 128};
         set_header(m / "model.safetensors", j.dump());
       }, {"model.safetensors", q, "[32, 128]", "[64, 64]"}},
      {"config.json missing", [](const fs::path& m) { fs::remove(m / "config.json"); }, {"config.json", "missing"}},
      {"config.json with a wrong-typed field", [](const fs::path& m) {
         auto c = json_read_file(m / "config.json");
         c["rms_norm_eps"] = "1e-5";
         json_write_file(m / "config.json", c);
       }, {"config.json", "\"rms_norm_eps\"", "a number"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    fs::path m = make_model("bad-" + std::to_string(&c - cases.data()));
    c.apply(m);
    for (const char* cmd : {"forward", "inspect"}) {
      std::vector<std::string> args = {cmd, m.string()};
      if (std::string(cmd) == "forward") args.insert(args.end(), {"--ids", "1,2"});
      auto r = run_difftx(args);
      EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.out << r.err;
      if (std::string(cmd) == "forward") {
        EXPECT_TRUE(r.out.empty()) << cmd << " printed: " << r.out;
      }
      EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
      for (const auto& part : c.expected) EXPECT_NE(r.err.find(part), std::string::npos) << cmd << ": " << r.err;
    }
  }
}

TEST_F(CliTest, ShardNamedInIndexButAbsent) {
  fs::path m = make_model("s", {"--max-shard-size", "100KB"});
  auto index = json_read_file(m / "model.safetensors.index.json");
  std::string victim = index["weight_map"]["model.layers.1.mlp.up_proj.weight"].get<std::string>();
  fs::remove(m / victim);
  auto r = run_difftx({"forward", m.string(), "--ids", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(victim), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
}

TEST(CliSmolLM2, InitHandlesTheRealShape) {
  TempDir dir;
  auto r = run_difftx({"init", "--config", (test::source_dir() / "examples/smollm2-135m/config.json").string(), "--out",
                       (dir / "smol").string(), "--dtype", "bf16", "--seed", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto info = json_parse(run_difftx({"inspect", (dir / "smol").string(), "--json"}).out, "inspect");
  EXPECT_EQ(info["parameters"], 134515008);
  EXPECT_EQ(info["num_hidden_layers"], 30);
  EXPECT_EQ(info["tie_word_embeddings"], true);
  EXPECT_EQ(info["tensor_count"], 30 * 9 + 2);
  auto fwd = run_difftx({"forward", (dir / "smol").string(), "--ids", "1,2,3,4", "--top", "2", "--json"});
  ASSERT_EQ(fwd.exit_code, 0) << fwd.err;
  EXPECT_EQ(json_parse(fwd.out, "forward").size(), 4u);
}

}  // namespace
}  // namespace difftx
