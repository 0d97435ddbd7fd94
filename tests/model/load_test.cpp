// Loading a model directory: every way a checkpoint can disagree with its config gives a clear
// error naming the file and the tensor or key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

std::string load_error(const fs::path& dir) {
  try {
    model_load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Rewrites a copy of a golden checkpoint with one tensor dropped or reshaped.
void rewrite_without(const fs::path& dir, const std::string& drop, const std::string& reshape = "") {
  SafetensorsFile in(dir / "model.safetensors");
  std::vector<std::vector<float>> data;
  std::vector<TensorWrite> out;
  data.reserve(in.tensors().size());
  for (const auto& t : in.tensors()) {
    if (t.name == drop) continue;
    data.emplace_back(t.numel());
    in.load_f32(t, data.back().data());
    std::vector<int64_t> shape = t.shape;
    if (t.name == reshape) shape = {shape[1], shape[0]};
    out.push_back({t.name, shape, data.back().data(), DType::F32});
  }
  fs::path tmp = dir / "new.safetensors";
  safetensors_write(tmp, out);
  fs::rename(tmp, dir / "model.safetensors");
}

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override { test::copy_tree(test::golden_dir() / "llama_bias", dir_.path()); }
  TempDir dir_;
};

TEST_F(LoadTest, GoodCopyLoads) { EXPECT_EQ(load_error(dir_.path()), ""); }

TEST_F(LoadTest, MissingTensor) {
  rewrite_without(dir_.path(), "model.layers.1.mlp.up_proj.bias");
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("\"model.layers.1.mlp.up_proj.bias\""), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST_F(LoadTest, WrongShape) {
  rewrite_without(dir_.path(), "", "model.layers.0.mlp.gate_proj.weight");
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("\"model.layers.0.mlp.gate_proj.weight\""), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("[48, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("[64, 48]"), std::string::npos) << e;
}

TEST_F(LoadTest, ConfigMissing) {
  fs::remove(dir_ / "config.json");
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST_F(LoadTest, ConfigWithWrongTypedField) {
  auto config = json_read_file(dir_ / "config.json");
  config["num_attention_heads"] = "4";
  json_write_file(dir_ / "config.json", config);
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("\"num_attention_heads\""), std::string::npos) << e;
  EXPECT_NE(e.find("an integer"), std::string::npos) << e;
}

TEST_F(LoadTest, ConfigThatDisagreesWithTheWeights) {
  auto config = json_read_file(dir_ / "config.json");
  config["num_hidden_layers"] = 3;
  json_write_file(dir_ / "config.json", config);
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("model.layers.2."), std::string::npos) << e;
}

TEST_F(LoadTest, TruncatedWeights) {
  auto bytes = test::read_bytes(dir_ / "model.safetensors");
  bytes.erase(bytes.end() - 100, bytes.end());
  test::write_bytes(dir_ / "model.safetensors", bytes);
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
}

TEST_F(LoadTest, UnsupportedDtypeNamesTensor) {
  SafetensorsFile in(dir_ / "model.safetensors");
  // Re-declare one F32 tensor of n elements as I32 (same byte length): valid file, unloadable tensor.
  auto bytes = test::read_bytes(dir_ / "model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + n);
  auto pos = header.find("\"model.norm.weight\"");
  ASSERT_NE(pos, std::string::npos);
  auto dt = header.find("\"F32\"", pos);
  header.replace(dt, 5, "\"I32\"");
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  test::write_bytes(dir_ / "model.safetensors", bytes);
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("\"model.norm.weight\""), std::string::npos) << e;
  EXPECT_NE(e.find("I32"), std::string::npos) << e;
}

TEST_F(LoadTest, NonFiniteWeightsAreRefused) {
  Model m = model_load(dir_.path());
  m.param("model.layers.1.mlp.down_proj.weight")[5] = std::nanf("");
  TempDir out;
  EXPECT_THROW(model_save(m, out.path(), DType::F32), ShapeError) << "difftx never writes NaN";
  // A file written by something else: patch the bytes of one float to NaN.
  SafetensorsFile file(dir_ / "model.safetensors");
  const TensorInfo* t = file.find("model.norm.weight");
  const uint64_t at = file.tensors().empty() ? 0 : t->begin;
  auto bytes = test::read_bytes(dir_ / "model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  const uint32_t nan_bits = 0x7fc00000u;
  std::memcpy(bytes.data() + 8 + n + at, &nan_bits, 4);
  test::write_bytes(dir_ / "model.safetensors", bytes);
  std::string e = load_error(dir_.path());
  EXPECT_NE(e.find("\"model.norm.weight\""), std::string::npos) << e;
  EXPECT_NE(e.find("NaN"), std::string::npos) << e;
}

TEST_F(LoadTest, F16OverflowIsRefusedOnWrite) {
  Model m = model_load(dir_.path());
  m.param("model.embed_tokens.weight")[0] = 70000.0f;
  TempDir out;
  try {
    model_save(m, out.path(), DType::F16);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("F16"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(model_save(m, out.path(), DType::BF16));
}

TEST_F(LoadTest, SaveThenLoadRoundTrips) {
  Model m = model_load(dir_.path());
  TempDir out;
  model_save(m, out.path(), DType::F32);
  Model back = model_load(out.path());
  ASSERT_EQ(back.weights().size(), m.weights().size());
  EXPECT_TRUE(std::equal(m.weights().begin(), m.weights().end(), back.weights().begin()));
  EXPECT_EQ(back.config().raw.dump(), m.config().raw.dump());

  TempDir sharded;
  model_save(m, sharded.path(), DType::BF16, {.max_shard_bytes = 20000});
  EXPECT_TRUE(fs::exists(sharded / "model.safetensors.index.json"));
  Model bf = model_load(sharded.path());
  EXPECT_EQ(bf.config().dtype, DType::BF16);
  for (size_t i = 0; i < m.weights().size(); ++i)
    ASSERT_EQ(bf.weights()[i], bf16_to_f32(f32_to_bf16(m.weights()[i])));
}

}  // namespace
}  // namespace difftx
