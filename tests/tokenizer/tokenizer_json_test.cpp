// Reading tokenizer.json as a whole: strict JSON, unknown or unsupported members, files.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tokenizer/json_ref.h"
#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

TEST(TokenizerJson, UnsupportedMembersNameTheirPath) {
  json j = tiny_tokenizer_json({"a", "b"}, {});
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Isolated"}, {"invert", false}},
                          {{"type", "Foo"}}}}};
  EXPECT_EQ(error_of([&] { from_json(j); }),
            "tokenizer.json: pre_tokenizer.pretokenizers[1].type \"Foo\" is not supported (supported: Sequence, "
            "ByteLevel, Split, Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation)");
  j = tiny_tokenizer_json({"a"}, {});
  j["truncation"] = {{"max_length", 512}};
  EXPECT_EQ(error_of([&] { from_json(j); }),
            "tokenizer.json: truncation must be null: truncation is not supported (difftx never cuts a text short "
            "without being asked)");
  j = tiny_tokenizer_json({"a"}, {});
  j["padding"] = {{"strategy", "BatchLongest"}};
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: padding must be null: padding is not supported");
  j = tiny_tokenizer_json({"a"}, {});
  j["extra"] = 1;
  EXPECT_EQ(error_of([&] { from_json(j); }).substr(0, 57), "tokenizer.json: extra is not a known option here (known: ");
  j = tiny_tokenizer_json({"a"}, {});
  j.erase("model");
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: model is missing");
  j = tiny_tokenizer_json({"a"}, {});
  j["added_tokens"] = json::object();
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: added_tokens must be an array, got an object");
  j = tiny_tokenizer_json({"a"}, {});
  j["decoder"] = {{"type", "CTC"}};
  EXPECT_EQ(error_of([&] { from_json(j); }).substr(0, 51), "tokenizer.json: decoder.type \"CTC\" is not supported");
  j = tiny_tokenizer_json({"a"}, {});
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {nullptr}}};
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: normalizer.normalizers[0] must be a normalizer object, got null");
}

TEST(TokenizerJson, StrictParsing) {
  EXPECT_EQ(error_of([] { tok::tokenizer_json_parse(R"({"model": {"vocab": {"a": 0, "a": 1}}})", "t.json"); }),
            "t.json: duplicate key \"a\" in a JSON object");
  std::string deep(200, '[');
  EXPECT_EQ(error_of([&] { tok::tokenizer_json_parse(deep, "t.json"); }), "t.json: JSON nests deeper than 128 levels");
  EXPECT_EQ(error_of([] { tok::tokenizer_json_parse("{\"a\": }", "t.json"); }).substr(0, 24), "t.json: not valid JSON: ");
}

TEST(TokenizerJson, Files) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { Tokenizer::load(dir.path()); }),
            dir.path().string() + ": no tokenizer.json in this directory (difftx reads Hugging Face fast-tokenizer files)");
  write_text(dir / "tokenizer.json", "{\"version\": \"1.0\",");
  EXPECT_EQ(error_of([&] { Tokenizer::load(dir.path()); }).substr(0, (dir / "tokenizer.json").string().size() + 16),
            (dir / "tokenizer.json").string() + ": not valid JSON");
  write_text(dir / "tokenizer.json", tiny_tokenizer_json({"a"}, {}).dump());
  write_text(dir / "tokenizer_config.json", "{\"add_bos_token\": \"yes\"}");
  EXPECT_EQ(error_of([&] { Tokenizer::load(dir.path()); }),
            (dir / "tokenizer_config.json").string() + ": add_bos_token must be a boolean, got a string");
  write_text(dir / "tokenizer_config.json", "{\"add_bos_token\": false, \"model_max_length\": 1e30}");
  EXPECT_EQ(Tokenizer::load(dir.path()).encode("aa"), (std::vector<int32_t>{0, 0}));
}

TEST(TokenizerJson, NoDecoderJoinsWithSpacesAndNoPreTokenizerKeepsTextWhole) {
  Tokenizer t = from_json(tiny_tokenizer_json({"a", "b", " ", "ab"}, {"a b"}));
  EXPECT_EQ(t.encode("ab ab"), (std::vector<int32_t>{3, 2, 3}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{3, 2, 3}), "ab   ab");
}

}  // namespace
}  // namespace difftx::test
