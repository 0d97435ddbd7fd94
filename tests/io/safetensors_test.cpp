// The strict safetensors reader: one test per way a file can lie (the format of the safetensors README).
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "io/safetensors_write.h"
#include "test_util.h"

namespace difftx {
namespace {

using test::TempDir;

// A file image: 8-byte length, header text, then `data_bytes` zero bytes.
std::vector<uint8_t> image(const std::string& header, size_t data_bytes, uint64_t declared_length = UINT64_MAX) {
  uint64_t n = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);  // one allocation: GCC 12 misreads a growing insert
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), out.begin() + 8);
  return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    safetensors_parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "bad.safetensors");
  } catch (const FileError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_REJECTED(bytes, ...)                                              \
  do {                                                                           \
    std::string message = parse_error(bytes);                                    \
    ASSERT_FALSE(message.empty()) << "accepted";                                 \
    EXPECT_NE(message.find("bad.safetensors"), std::string::npos) << message;    \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(message.find(part), std::string::npos) << message; \
  } while (0)

const std::string kGood = R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}})";

TEST(Safetensors, AcceptsAValidFile) {
  auto bytes = image(kGood, 32);
  auto h = safetensors_parse(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "ok");
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h.tensors[1].dtype, DType::BF16);
  EXPECT_EQ(h.data_start, 8 + kGood.size());
}

TEST(Safetensors, AcceptsAnEmptyTableAndZeroSizedTensors) {
  auto empty = image("{}", 0);
  EXPECT_EQ(parse_error(empty), "");
  auto zero = image(R"({"z":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_EQ(parse_error(zero), "");
}

TEST(Safetensors, RejectsTruncatedFile) {
  const std::vector<uint8_t> three_bytes = {1, 2, 3};
  EXPECT_REJECTED(three_bytes, "truncated", "8-byte");
}

TEST(Safetensors, RejectsHeaderLengthPastEof) {
  EXPECT_REJECTED(image(kGood, 32, kGood.size() + 1000), "runs past the end");
}

TEST(Safetensors, RejectsHeaderLengthOverCap) {
  EXPECT_REJECTED(image(kGood, 32, 200'000'000), "limit");
  EXPECT_REJECTED(image(kGood, 32, UINT64_MAX - 3), "limit");  // near 2^64: no overflow in the check
}

TEST(Safetensors, RejectsHeaderThatIsNotJson) { EXPECT_REJECTED(image("{\"a\": [1, 2", 0), "not valid JSON"); }

TEST(Safetensors, RejectsHeaderThatIsNotAnObject) { EXPECT_REJECTED(image("[1, 2, 3]", 0), "must be a JSON object"); }

TEST(Safetensors, RejectsUnknownDtype) {
  EXPECT_REJECTED(image(R"({"w":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4), "\"w\"", "unknown dtype", "F31");
}

TEST(Safetensors, RejectsShapeAndByteLengthDisagreeing) {
  EXPECT_REJECTED(image(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 12), "\"w\"", "needs 16 bytes");
}

TEST(Safetensors, RejectsDimensionsWhoseProductOverflows) {
  EXPECT_REJECTED(image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}})", 8), "\"w\"",
                  "overflows");
  EXPECT_REJECTED(image(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8), "overflows");
}

TEST(Safetensors, RejectsOverlappingOffsets) {
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
                  "overlap");
}

TEST(Safetensors, RejectsOffsetsOutOfRange) {
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), "\"a\"", "past the end");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8), "end before they begin");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 0), "non-negative");
}

TEST(Safetensors, RejectsHolesAndTrailingBytes) {
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "hole");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12), "cover 4 bytes");
}

TEST(Safetensors, RejectsDuplicateNames) {
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                  "duplicate", "\"a\"");
}

TEST(Safetensors, RejectsMalformedEntriesAndMetadata) {
  EXPECT_REJECTED(image(R"({"__metadata__":{"format":1}})", 0), "__metadata__", "string");
  EXPECT_REJECTED(image(R"({"__metadata__":[1]})", 0), "__metadata__");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1]}})", 0), "missing field \"data_offsets\"");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), "shape");
  EXPECT_REJECTED(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4), "unexpected field");
  EXPECT_REJECTED(image(R"({"a":7})", 0), "entry must be an object");
}

TEST(Safetensors, RejectsDeeplyNestedHeader) {
  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  EXPECT_REJECTED(image("{\"a\":" + deep + "}", 0), "deeper");
}

TEST(Safetensors, WriteThenReadRoundTrips) {
  TempDir dir;
  std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, 1e-4f, 7.0f};
  std::vector<float> b = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<TensorWrite> tensors = {{"layer.a", {2, 3}, a.data(), DType::F32},
                                      {"layer.b", {4}, b.data(), DType::BF16},
                                      {"layer.c", {2, 2}, b.data(), DType::F16}};
  safetensors_write(dir / "x.safetensors", tensors);
  auto raw = test::read_bytes(dir / "x.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | raw[i];
  EXPECT_EQ((8 + n) % 8, 0u) << "header must be padded to 8 bytes";

  SafetensorsFile file(dir / "x.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.tensors().size(), 3u);
  std::vector<float> back(6);
  file.load_f32(*file.find("layer.a"), back.data());
  EXPECT_EQ(back, a);
  file.load_f32(*file.find("layer.b"), back.data());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(back[i], bf16_to_f32(f32_to_bf16(b[i])));
  file.load_f32(*file.find("layer.c"), back.data());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(back[i], f16_to_f32(f32_to_f16(b[i])));
  EXPECT_EQ(file.find("missing"), nullptr);
  // No temporary files left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, LoadingAnUnsupportedDtypeNamesTensorAndDtype) {
  TempDir dir;
  test::write_bytes(dir / "i.safetensors", image(R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16));
  SafetensorsFile file(dir / "i.safetensors");
  std::vector<float> out(2);
  try {
    file.load_f32(*file.find("ids"), out.data());
    FAIL() << "I64 loaded";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("\"ids\""), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("I64"), std::string::npos);
  }
}

TEST(Safetensors, MissingFileIsAFileError) {
  TempDir dir;
  EXPECT_THROW(SafetensorsFile(dir / "nope.safetensors"), FileError);
  EXPECT_THROW(SafetensorsFile(dir.path()), FileError);  // a directory
}

}  // namespace
}  // namespace difftx
