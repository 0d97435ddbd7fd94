// pre_tokenizers.cpp and split.cpp: exact splits for each type and behaviour (examples from
// tokenizers' documentation and tests).
#include <gtest/gtest.h>

#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

using V = std::vector<std::string>;

json split(const std::string& literal, const std::string& behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", literal}}}, {"behavior", behavior}, {"invert", invert}};
}

TEST(TokenizerPreTokenizers, SplitBehaviors) {
  const std::string text = "the-final--countdown";
  EXPECT_EQ(pre_tokenize(split("-", "Removed"), text), (V{"the", "final", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("-", "Isolated"), text), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("-", "MergedWithPrevious"), text), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("-", "MergedWithNext"), text), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pre_tokenize(split("-", "Contiguous"), text), (V{"the", "-", "final", "--", "countdown"}));
  // A match at the very start or end.
  EXPECT_EQ(pre_tokenize(split("-", "MergedWithNext"), "-a-"), (V{"-a", "-"}));
  EXPECT_EQ(pre_tokenize(split("-", "MergedWithPrevious"), "-a-"), (V{"-", "a-"}));
  EXPECT_EQ(pre_tokenize(split("-", "Contiguous"), "--a"), (V{"--", "a"}));
}

TEST(TokenizerPreTokenizers, SplitInvertKeepsTheMatches) {
  json words = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Removed"}, {"invert", true}};
  EXPECT_EQ(pre_tokenize(words, "Hey, my friend!"), (V{"Hey", "my", "friend"}));
  json inv_iso = {{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "MergedWithPrevious"}, {"invert", true}};
  // Inverted: the non-digit runs are "matches" and join the piece before them.
  EXPECT_EQ(pre_tokenize(inv_iso, "12ab34cd"), (V{"12ab", "34cd"}));
}

TEST(TokenizerPreTokenizers, SplitRegexLlama3Pattern) {
  json llama3 = {{"type", "Split"},
                 {"pattern",
                  {{"Regex",
                    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                 {"behavior", "Isolated"},
                 {"invert", false}};
  EXPECT_EQ(pre_tokenize(llama3, "I'VE got 12345 apples!!\n\n  ok"),
            (V{"I", "'VE", " got", " ", "123", "45", " apples", "!!\n\n", " ", " ok"}));
  EXPECT_EQ(pre_tokenize(llama3, "\u3000x"), (V{"\u3000x"}));  // [^\r\n\p{L}\p{N}]? takes the ideographic space
}

TEST(TokenizerPreTokenizers, ByteLevel) {
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  EXPECT_EQ(pre_tokenize(bl, "Hello my friend, how is your day going?"),
            (V{"Hello", "\u0120my", "\u0120friend", ",", "\u0120how", "\u0120is", "\u0120your", "\u0120day",
               "\u0120going", "?"}));
  EXPECT_EQ(pre_tokenize(bl, "Hello there\nHello there"), (V{"Hello", "\u0120there", "\u010A", "Hello", "\u0120there"}));
  EXPECT_EQ(pre_tokenize(bl, "Hello there       dear"),
            (V{"Hello", "\u0120there", "\u0120\u0120\u0120\u0120\u0120\u0120", "\u0120dear"}));
  EXPECT_EQ(pre_tokenize(bl, "i\u2B62j"), (V{"i", "\u00E2\u0143\u00A2", "j"}));  // bytes E2 AD A2
  json prefixed = bl;
  prefixed["add_prefix_space"] = true;
  EXPECT_EQ(pre_tokenize(prefixed, "Hello my"), (V{"\u0120Hello", "\u0120my"}));
  EXPECT_EQ(pre_tokenize(prefixed, " Hello my"), (V{"\u0120Hello", "\u0120my"}));
  json no_regex = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  EXPECT_EQ(pre_tokenize(no_regex, "a b\x7F"), (V{"a\u0120b\u0121"}));  // 0x7F is the 34th unprintable byte
}

TEST(TokenizerPreTokenizers, Digits) {
  json one = {{"type", "Digits"}, {"individual_digits", true}};
  json runs = {{"type", "Digits"}, {"individual_digits", false}};
  EXPECT_EQ(pre_tokenize(one, "Hey 123 friend!"), (V{"Hey ", "1", "2", "3", " friend!"}));
  EXPECT_EQ(pre_tokenize(runs, "Hey 123 friend!"), (V{"Hey ", "123", " friend!"}));
  EXPECT_EQ(pre_tokenize(runs, "\u00BD\u0663x"), (V{"\u00BD\u0663", "x"}));  // No and Nd are numeric
}

TEST(TokenizerPreTokenizers, Punctuation) {
  json p = {{"type", "Punctuation"}};
  EXPECT_EQ(pre_tokenize(p, "Hey friend!     How are you?!?"),
            (V{"Hey friend", "!", "     How are you", "?", "!", "?"}));
  json c = {{"type", "Punctuation"}, {"behavior", "Contiguous"}};
  EXPECT_EQ(pre_tokenize(c, "Hi?!? $5\u00BF"), (V{"Hi", "?!?", " ", "$", "5", "\u00BF"}));
}

TEST(TokenizerPreTokenizers, WhitespaceAndWhitespaceSplit) {
  json w = {{"type", "Whitespace"}};
  EXPECT_EQ(pre_tokenize(w, "Hey man!"), (V{"Hey", "man", "!"}));
  EXPECT_EQ(pre_tokenize(w, "How are you doing?"), (V{"How", "are", "you", "doing", "?"}));
  EXPECT_EQ(pre_tokenize(w, "\n"), V{});
  EXPECT_EQ(pre_tokenize(w, "caf\u00E9s_1 ,.;x"), (V{"caf\u00E9s_1", ",.;", "x"}));
  json ws = {{"type", "WhitespaceSplit"}};
  EXPECT_EQ(pre_tokenize(ws, "Hey man!"), (V{"Hey", "man!"}));
  EXPECT_EQ(pre_tokenize(ws, "  a\u3000b \n"), (V{"a", "b"}));
}

TEST(TokenizerPreTokenizers, MetaspacePrependSchemes) {
  json always = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(pre_tokenize(always, "Hey friend!"), (V{"\u2581Hey", "\u2581friend!"}));
  EXPECT_EQ(pre_tokenize(always, "Hey   friend!"), (V{"\u2581Hey", "\u2581", "\u2581", "\u2581friend!"}));
  json first = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  EXPECT_EQ(pre_tokenize(first, "Hey my friend ", true), (V{"\u2581Hey\u2581my\u2581friend\u2581"}));
  EXPECT_EQ(pre_tokenize(first, "how are", false), (V{"how\u2581are"}));  // not at the start of the input
  EXPECT_EQ(pre_tokenize(first, " you", false), (V{"\u2581you"}));
  json never = {{"type", "Metaspace"}, {"replacement", "_"}, {"prepend_scheme", "never"}, {"split", true}};
  EXPECT_EQ(pre_tokenize(never, "a b"), (V{"a", "_b"}));
  // Legacy spelling: add_prefix_space false means never; true (no prepend_scheme) means always.
  json legacy = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", false}, {"str_rep", "\u2581"}};
  EXPECT_EQ(pre_tokenize(legacy, "a b"), (V{"a", "\u2581b"}));
  json legacy_on = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true}};
  EXPECT_EQ(pre_tokenize(legacy_on, "a"), (V{"\u2581a"}));
  json contradiction = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", false},
                        {"prepend_scheme", "always"}};
  EXPECT_EQ(error_of([&] { pre_tokenize(contradiction, "a"); }),
            "tokenizer.json: pre_tokenizer.add_prefix_space is false but prepend_scheme is not \"never\"");
}

TEST(TokenizerPreTokenizers, SequenceAppliesEachToEveryPiece) {
  json seq = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "WhitespaceSplit"}}, {{"type", "Digits"}, {"individual_digits", true}}}}};
  EXPECT_EQ(pre_tokenize(seq, "ab12 c3"), (V{"ab", "1", "2", "c", "3"}));
  json three = {{"type", "Sequence"},
                {"pretokenizers",
                 {split(" ", "Removed"), split("-", "Isolated"), {{"type", "Digits"}, {"individual_digits", false}}}}};
  EXPECT_EQ(pre_tokenize(three, "a-12 b"), (V{"a", "-", "12", "b"}));
  json empty = {{"type", "Sequence"}, {"pretokenizers", json::array()}};
  EXPECT_EQ(pre_tokenize(empty, "a b"), (V{"a b"}));
}

TEST(TokenizerPreTokenizers, UnsupportedTypesAndOptionsNameTheirPath) {
  json seq = {{"type", "Sequence"}, {"pretokenizers", {split("-", "Isolated"), {{"type", "Foo"}}}}};
  EXPECT_EQ(error_of([&] { pre_tokenize(seq, "x"); }),
            "tokenizer.json: pre_tokenizer.pretokenizers[1].type \"Foo\" is not supported (supported: Sequence, "
            "ByteLevel, Split, Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation)");
  std::string bert = error_of([&] { pre_tokenize({{"type", "BertPreTokenizer"}}, "x"); });
  EXPECT_TRUE(bert.starts_with("tokenizer.json: pre_tokenizer.type \"BertPreTokenizer\" is not supported")) << bert;
  EXPECT_EQ(error_of([&] { pre_tokenize(split("-", "Dropped"), "x"); }),
            "tokenizer.json: pre_tokenizer.behavior \"Dropped\" is not a split behavior (supported: Removed, Isolated, "
            "MergedWithPrevious, MergedWithNext, Contiguous)");
  json bad_regex = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}, {"invert", false}};
  std::string regex = error_of([&] { pre_tokenize(bad_regex, "x"); });
  EXPECT_TRUE(regex.starts_with("tokenizer.json: pre_tokenizer.pattern.Regex: regex \"(a\" does not compile: ")) << regex;
  json extra = {{"type", "Digits"}, {"individual_digits", true}, {"max_digits", 3}};
  EXPECT_EQ(error_of([&] { pre_tokenize(extra, "x"); }),
            "tokenizer.json: pre_tokenizer.max_digits is not a known option here (known: type, individual_digits); "
            "difftx does not guess what it means");
  json not_bool = {{"type", "Digits"}, {"individual_digits", "yes"}};
  EXPECT_EQ(error_of([&] { pre_tokenize(not_bool, "x"); }),
            "tokenizer.json: pre_tokenizer.individual_digits must be a boolean, got a string");
}

}  // namespace
}  // namespace difftx::test
