// added_tokens.cpp: leftmost-longest matching and the single_word, lstrip, rstrip, normalized and
// special options (cases modelled on tokenizers' added_vocabulary tests).
#include <gtest/gtest.h>

#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

using Ids = std::vector<int32_t>;

json added(int id, const std::string& content, bool special, json extra = json::object()) {
  json t = {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
            {"rstrip", false},  {"normalized", !special}, {"special", special}};
  for (auto it = extra.begin(); it != extra.end(); ++it) t[it.key()] = it.value();
  return t;
}

// Characters as tokens: ids 0..27 = a..z, ' ', '!'.
json alphabet() {
  std::vector<std::string> v;
  for (char c = 'a'; c <= 'z'; ++c) v.push_back(std::string(1, c));
  v.push_back(" ");
  v.push_back("!");
  return tiny_tokenizer_json(v, {});
}

TEST(TokenizerAddedTokens, LeftmostLongest) {
  json j = alphabet();
  j["added_tokens"] = json::array({added(30, "<a>", true), added(31, "<a><b>", true), added(32, "b>", true)});
  Tokenizer t = from_json(j);
  EXPECT_EQ(t.encode("x<a><b>y"), (Ids{23, 31, 24}));
  EXPECT_EQ(t.encode("x<a>b>"), (Ids{23, 30, 32}));
  EXPECT_EQ(t.decode(Ids{23, 31, 24}), "x <a><b> y");  // no decoder: tokens joined with spaces
}

TEST(TokenizerAddedTokens, SpecialTokensOnlyWhenAllowed) {
  json j = alphabet();
  j["added_tokens"] = json::array({added(30, "ab", true), added(31, "cd", false)});
  Tokenizer t = from_json(j);
  EXPECT_EQ(t.encode("abcd"), (Ids{30, 31}));
  EncodeOptions plain;
  plain.parse_special = false;
  EXPECT_EQ(t.encode("abcd", plain), (Ids{0, 1, 31}));  // the non-special token is still found
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  EXPECT_EQ(t.decode(Ids{30, 31, 0}, skip), "cd a");
  json config = {{"split_special_tokens", true}};
  EXPECT_EQ(from_json(j, &config).encode("abcd"), (Ids{0, 1, 31}));
}

TEST(TokenizerAddedTokens, SingleWord) {
  json j = alphabet();
  j["added_tokens"] = json::array({added(30, "ony", false, {{"single_word", true}})});
  Tokenizer t = from_json(j);
  // "ony" inside "anthony" is not a word of its own; the standalone one is.
  EXPECT_EQ(t.encode("anthony ony!"), (Ids{0, 13, 19, 7, 14, 13, 24, 26, 30, 27}));
}

TEST(TokenizerAddedTokens, LstripAndRstripTakeTheSpaces) {
  json j = alphabet();
  j["added_tokens"] = json::array({added(30, "<mask>", true, {{"lstrip", true}}), added(31, "<eos>", true, {{"rstrip", true}})});
  Tokenizer t = from_json(j);
  EXPECT_EQ(t.encode("a  <mask> b"), (Ids{0, 30, 26, 1}));
  EXPECT_EQ(t.encode("a<eos>   b"), (Ids{0, 31, 1}));
  EXPECT_EQ(t.encode("<eos> <mask>"), (Ids{31, 30}));  // lstrip does not reach into the previous match
}

TEST(TokenizerAddedTokens, NormalizedTokensMatchTheNormalizedText) {
  json j = alphabet();
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = json::array({added(30, "yesterday", false), added(31, "[CLS]", true)});
  Tokenizer t = from_json(j);
  EXPECT_EQ(t.encode("[CLS] Yesterday"), (Ids{31, 26, 30}));
  // [CLS] is not normalized: "[cls]" is plain text (its characters are not in this vocab).
  EXPECT_EQ(t.encode("[cls]"), (Ids{2, 11, 18}));
}

TEST(TokenizerAddedTokens, IdsBeyondTheVocabDecode) {
  json j = alphabet();
  j["added_tokens"] = json::array({added(100, "<|x|>", true)});
  Tokenizer t = from_json(j);
  EXPECT_EQ(t.vocab_size(), 101);
  EXPECT_EQ(t.encode("a<|x|>"), (Ids{0, 100}));
  EXPECT_EQ(t.decode(Ids{100}), "<|x|>");
  EXPECT_EQ(t.id_to_token(99), nullptr);
  EXPECT_EQ(error_of([&] { t.decode(Ids{99}); }), "id 99 is not in the vocabulary of tokenizer.json (ids 0..100)");
}

TEST(TokenizerAddedTokens, ContradictionsAreErrors) {
  json j = alphabet();
  j["added_tokens"] = json::array({added(5, "a", false)});
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: added_tokens[0] gives \"a\" id 5, but model.vocab has it as id 0");
  j["added_tokens"] = json::array({added(1, "<x>", true)});
  EXPECT_EQ(error_of([&] { from_json(j); }),
            "tokenizer.json: added_tokens[0] gives id 1 to \"<x>\", but model.vocab has \"b\" there");
  j["added_tokens"] = json::array({added(40, "<x>", true), added(40, "<y>", true)});
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: added_tokens[1] repeats id 40");
  j["added_tokens"] = json::array({added(40, "", true)});
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: added_tokens[0].content must not be empty");
  j["added_tokens"] = json::array({added(40, "<x>", true, {{"weight", 2}})});
  EXPECT_EQ(error_of([&] { from_json(j); }).substr(0, 56), "tokenizer.json: added_tokens[0].weight is not a known op");
}

}  // namespace
}  // namespace difftx::test
