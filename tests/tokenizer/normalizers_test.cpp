// normalizers.cpp: each type, exact output.
#include <gtest/gtest.h>

#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

TEST(TokenizerNormalizers, UnicodeForms) {
  const std::string e_acute = "\u00E9", e_combining = "e\u0301";
  EXPECT_EQ(normalize({{"type", "NFC"}}, e_combining), e_acute);
  EXPECT_EQ(normalize({{"type", "NFD"}}, e_acute), e_combining);
  // Compatibility forms: the ligature "ﬁ" and full-width "Ａ" become "fi" and "A".
  EXPECT_EQ(normalize({{"type", "NFKC"}}, "\uFB01\uFF21\u00E9"), "fiA\u00E9");
  EXPECT_EQ(normalize({{"type", "NFKD"}}, "\uFB01\u00E9"), "fie\u0301");
  EXPECT_EQ(normalize({{"type", "NFC"}}, "plain ascii"), "plain ascii");
  EXPECT_EQ(normalize({{"type", "NFKC"}}, ""), "");
}

TEST(TokenizerNormalizers, Lowercase) {
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "HeLLo \u00C9\u03A3\u0391"), "hello \u00E9\u03C3\u03B1");
  // Rust's char::to_lowercase: U+0130 becomes two characters; Σ is σ even at the end of a word.
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "\u0130"), "i\u0307");
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "\u039F\u03A3"), "\u03BF\u03C3");
}

TEST(TokenizerNormalizers, StripUsesWhiteSpace) {
  json both = {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}};
  EXPECT_EQ(normalize(both, " \t\u3000 hi there \n\u00A0"), "hi there");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, "  hi  "), "hi  ");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, "  hi  "), "  hi");
  EXPECT_EQ(normalize(both, "   "), "");
  EXPECT_EQ(normalize(both, "\u200Bx\u200B"), "\u200Bx\u200B");  // zero-width space is not White_Space
}

TEST(TokenizerNormalizers, ReplaceStringAndRegex) {
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}, "a b  c"),
            "a\u2581b\u2581\u2581c");
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}}, "a \t\n b"), "a b");
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"String", "aa"}}}, {"content", "b"}}, "aaaaa"), "bba");
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"String", "x"}}}, {"content", ""}}, "xaxbx"), "ab");
}

TEST(TokenizerNormalizers, PrependOnlyToNonEmptyText) {
  json prepend = {{"type", "Prepend"}, {"prepend", "\u2581"}};
  EXPECT_EQ(normalize(prepend, "Hey"), "\u2581Hey");
  EXPECT_EQ(normalize(prepend, ""), "");
}

TEST(TokenizerNormalizers, SequenceInOrder) {
  // Mistral's normalizer.
  json seq = {{"type", "Sequence"},
              {"normalizers",
               {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}};
  EXPECT_EQ(normalize(seq, "Hello world"), "\u2581Hello\u2581world");
  EXPECT_EQ(normalize(seq, " x"), "\u2581\u2581x");
  json lower_nfd = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "Lowercase"}}}}};
  EXPECT_EQ(normalize(lower_nfd, "\u00C9"), "e\u0301");
}

TEST(TokenizerNormalizers, UnsupportedTypeNamesItsPath) {
  EXPECT_EQ(error_of([] { normalize({{"type", "BertNormalizer"}}, "x"); }),
            "tokenizer.json: normalizer.type \"BertNormalizer\" is not supported (supported: Sequence, NFC, NFD, NFKC, "
            "NFKD, Lowercase, Strip, Replace, Prepend)");
  EXPECT_EQ(error_of([] {
              normalize({{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Precompiled"}}}}}, "x");
            }),
            "tokenizer.json: normalizer.normalizers[1].type \"Precompiled\" is not supported (supported: Sequence, NFC, "
            "NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend)");
  EXPECT_EQ(error_of([] { normalize({{"type", "Strip"}, {"strip_left", true}}, "x"); }),
            "tokenizer.json: normalizer.strip_right is missing");
  EXPECT_EQ(error_of([] { normalize({{"type", "Lowercase"}, {"locale", "tr"}}, "x"); }),
            "tokenizer.json: normalizer.locale is not a known option here (known: type); difftx does not guess what "
            "it means");
  EXPECT_EQ(error_of([] { normalize({{"type", "Replace"}, {"pattern", {{"Glob", "*"}}}, {"content", ""}}, "x"); }),
            "tokenizer.json: normalizer.pattern must be {\"String\": ...} or {\"Regex\": ...}, got key \"Glob\"");
}

}  // namespace
}  // namespace difftx::test
