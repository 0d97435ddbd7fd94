#include "io/weight_files.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "io/json_file.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Tensors {
  std::vector<float> a = std::vector<float>(100, 1.0f), b = std::vector<float>(50, 2.0f), c = std::vector<float>(30, 3.0f);
  std::vector<TensorWrite> list() {
    return {{"w.a", {10, 10}, a.data(), DType::F32}, {"w.b", {50}, b.data(), DType::F32}, {"w.c", {3, 10}, c.data(), DType::BF16}};
  }
};

TEST(WeightFiles, SingleFile) {
  TempDir dir;
  Tensors t;
  auto files = weight_files_write(dir.path(), t.list());
  EXPECT_EQ(files, std::vector<std::string>{"model.safetensors"});
  WeightFiles ck(dir.path());
  EXPECT_EQ(ck.shard_count(), 1u);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"w.a", "w.b", "w.c"}));
  EXPECT_EQ(ck.dtypes(), (std::set<DType>{DType::F32, DType::BF16}));
  std::vector<float> out(100);
  ck.load_f32("w.a", std::vector<int64_t>{10, 10}, out.data());
  EXPECT_EQ(out, t.a);
}

TEST(WeightFiles, ShardsAboveTheLimitWithAnIndex) {
  TempDir dir;
  Tensors t;
  // 400 + 200 + 60 bytes; limit 450: [a] [b c]
  auto files = weight_files_write(dir.path(), t.list(), {.max_shard_bytes = 450});
  EXPECT_EQ(files, (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                             "model.safetensors.index.json"}));
  auto index = json_read_file(dir / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"], 660);
  EXPECT_EQ(index["weight_map"]["w.a"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["w.c"], "model-00002-of-00002.safetensors");
  WeightFiles ck(dir.path());
  EXPECT_EQ(ck.shard_count(), 2u);
  std::vector<float> out(30);
  ck.load_f32("w.c", std::vector<int64_t>{3, 10}, out.data());
  EXPECT_EQ(out, t.c);
  // A tensor larger than the limit gets a shard of its own.
  TempDir dir2;
  auto files2 = weight_files_write(dir2.path(), t.list(), {.max_shard_bytes = 100});
  EXPECT_EQ(files2.size(), 4u);
}

TEST(WeightFiles, ShardNamedInIndexButAbsent) {
  TempDir dir;
  Tensors t;
  weight_files_write(dir.path(), t.list(), {.max_shard_bytes = 450});
  fs::remove(dir / "model-00002-of-00002.safetensors");
  std::string e = error_of([&] { WeightFiles ck(dir.path()); });
  EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST(WeightFiles, IndexEscapingTheDirectoryIsRejected) {
  TempDir dir;
  test::write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"w.a": "../model.safetensors"}})");
  std::string e = error_of([&] { WeightFiles ck(dir.path()); });
  EXPECT_NE(e.find("not a plain file name"), std::string::npos) << e;
}

TEST(WeightFiles, IndexMappingATensorTheShardLacks) {
  TempDir dir;
  Tensors t;
  weight_files_write(dir.path(), t.list(), {.max_shard_bytes = 450});
  auto index = json_read_file(dir / "model.safetensors.index.json");
  index["weight_map"]["w.z"] = "model-00001-of-00002.safetensors";
  json_write_file(dir / "model.safetensors.index.json", index);
  std::string e = error_of([&] { WeightFiles ck(dir.path()); });
  EXPECT_NE(e.find("\"w.z\""), std::string::npos) << e;
}

TEST(WeightFiles, MalformedIndex) {
  TempDir dir;
  test::write_text(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_NE(error_of([&] { WeightFiles ck(dir.path()); }).find("weight_map"), std::string::npos);
  test::write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"w.a": 3}})");
  EXPECT_NE(error_of([&] { WeightFiles ck(dir.path()); }).find("w.a"), std::string::npos);
}

TEST(WeightFiles, NoWeightsAtAll) {
  TempDir dir;
  std::string e = error_of([&] { WeightFiles ck(dir.path()); });
  EXPECT_NE(e.find("no weights"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { WeightFiles ck(dir / "absent"); }).find("not a model directory"), std::string::npos);
}

TEST(WeightFiles, WrongShapeAndMissingTensor) {
  TempDir dir;
  Tensors t;
  weight_files_write(dir.path(), t.list());
  WeightFiles ck(dir.path());
  std::vector<float> out(100);
  try {
    ck.load_f32("w.a", std::vector<int64_t>{100}, out.data());
    FAIL();
  } catch (const ShapeError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("\"w.a\""), std::string::npos) << m;
    EXPECT_NE(m.find("[10, 10]"), std::string::npos) << m;
    EXPECT_NE(m.find("[100]"), std::string::npos) << m;
  }
  EXPECT_THROW(ck.load_f32("w.q", std::vector<int64_t>{1}, out.data()), FileError);
}

TEST(WeightFiles, ParseByteSize) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("2GiB"), 2147483648u);
  EXPECT_EQ(parse_byte_size("1.5kb"), 1500u);
  EXPECT_EQ(parse_byte_size("123"), 123u);
  EXPECT_THROW(parse_byte_size("lots"), ConfigError);
  EXPECT_THROW(parse_byte_size("5TB"), ConfigError);
  EXPECT_THROW(parse_byte_size("0"), ConfigError);
}

}  // namespace
}  // namespace difftx
