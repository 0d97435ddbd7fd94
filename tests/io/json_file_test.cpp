#include "io/json_file.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "test_util.h"

namespace difftx {
namespace {

TEST(JsonFile, KeepsKeyOrder) {
  auto j = json_parse(R"({"z": 1, "a": 2, "m": {"y": 1, "b": 2}})", "t.json");
  EXPECT_EQ(j.dump(), R"({"z":1,"a":2,"m":{"y":1,"b":2}})");
}

TEST(JsonFile, RejectsDuplicateKeysAtAnyDepth) {
  EXPECT_THROW(json_parse(R"({"a": 1, "a": 2})", "t.json"), FileError);
  EXPECT_THROW(json_parse(R"({"x": {"a": 1, "a": 2}})", "t.json"), FileError);
  EXPECT_NO_THROW(json_parse(R"({"x": {"a": 1}, "y": {"a": 2}})", "t.json"));
}

TEST(JsonFile, RejectsDeepNestingAndGarbage) {
  std::string deep = std::string(kJsonMaxDepth + 5, '[') + std::string(kJsonMaxDepth + 5, ']');
  EXPECT_THROW(json_parse(deep, "t.json"), FileError);
  std::string ok = std::string(10, '[') + std::string(10, ']');
  EXPECT_NO_THROW(json_parse(ok, "t.json"));
  try {
    json_parse("{\"a\": tru}", "conf/t.json");
    FAIL();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("conf/t.json"), std::string::npos);
  }
}

TEST(JsonFile, WriteThenRead) {
  test::TempDir dir;
  ordered_json j = {{"b", 1}, {"a", {1, 2, 3}}};
  json_write_file(dir / "x.json", j);
  EXPECT_EQ(json_read_file(dir / "x.json"), j);
  EXPECT_THROW(json_read_file(dir / "absent.json"), FileError);
}

}  // namespace
}  // namespace difftx
