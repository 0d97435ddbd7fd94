// regex.cpp: Oniguruma -> PCRE2 translation and the match iteration rules of tokenizers.
#include <gtest/gtest.h>

#include "tokenizer/regex.h"
#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

using tok::ByteSpan;
using tok::Regex;

std::vector<std::pair<uint32_t, uint32_t>> matches(const Regex& r, std::string_view text) {
  std::vector<ByteSpan> spans;
  r.find_all(text, spans);
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (const ByteSpan& s : spans) out.emplace_back(s.begin, s.end);
  return out;
}

using P = std::vector<std::pair<uint32_t, uint32_t>>;

TEST(TokenizerRegex, TranslatesOnigurumaShorthands) {
  const std::string what = "test";
  EXPECT_EQ(tok::regex_onig_to_pcre2("\\s+(?!\\S)", what), "\\p{White_Space}+(?!\\P{White_Space})");
  EXPECT_EQ(tok::regex_onig_to_pcre2("[^\\s\\p{L}\\p{N}]", what), "[^\\p{White_Space}\\p{L}\\p{N}]");
  EXPECT_EQ(tok::regex_onig_to_pcre2("\\w+|[\\w.]", what), "[\\p{L}\\p{M}\\p{N}\\p{Pc}]+|[\\p{L}\\p{M}\\p{N}\\p{Pc}.]");
  EXPECT_EQ(tok::regex_onig_to_pcre2("\\W\\h\\H", what), "[^\\p{L}\\p{M}\\p{N}\\p{Pc}][0-9a-fA-F][^0-9a-fA-F]");
  EXPECT_EQ(tok::regex_onig_to_pcre2("\\\\s\\Q\\s[\\E[]s]", what), "\\\\s\\Q\\s[\\E[]s]");  // escaped, quoted, ']' first
  EXPECT_EQ(tok::regex_onig_to_pcre2("[[:alpha:]\\s]", what), "[[:alpha:]\\p{White_Space}]");
  EXPECT_EQ(error_of([&] { tok::regex_onig_to_pcre2("[a[b]]", what); }),
            "test: regex \"[a[b]]\" uses a nested character class, which difftx cannot translate from "
            "Oniguruma to PCRE2");
  EXPECT_EQ(error_of([&] { tok::regex_onig_to_pcre2("[a&&b]", what); }),
            "test: regex \"[a&&b]\" uses a class intersection (&&), which difftx cannot translate from Oniguruma to "
            "PCRE2");
  EXPECT_EQ(error_of([&] { tok::regex_onig_to_pcre2("[\\W]", what); }),
            "test: regex \"[\\W]\" uses \\W inside a character class, which difftx cannot translate from Oniguruma "
            "to PCRE2");
}

TEST(TokenizerRegex, WhiteSpaceClassIsUnicodeWhiteSpace) {
  Regex s("\\s", "test");
  EXPECT_EQ(matches(s, "\u3000"), (P{{0, 3}}));
  EXPECT_EQ(matches(s, "\u0085"), (P{{0, 2}}));
  EXPECT_EQ(matches(s, "\u180E"), P{});  // Mongolian vowel separator: PCRE2's own \s would match it
  EXPECT_EQ(matches(s, "\u200B\x1C"), P{});
  Regex w("\\w+", "test");
  EXPECT_EQ(matches(w, "e\u0301_x \u00BD"), (P{{0, 5}, {6, 8}}));  // marks and No are word characters
}

TEST(TokenizerRegex, IterationSkipsEmptyMatchRightAfterAMatch) {
  // The Rust regex/onig iteration: an empty match is reported unless it ends where the previous
  // match ended.
  EXPECT_EQ(matches(Regex("a*", "t"), "baa"), (P{{0, 0}, {1, 3}}));
  EXPECT_EQ(matches(Regex("x*", "t"), "ab"), (P{{0, 0}, {1, 1}, {2, 2}}));
  EXPECT_EQ(matches(Regex("\u00E9*", "t"), "\u00E9a"), (P{{0, 2}, {3, 3}}));  // steps over whole characters
  EXPECT_EQ(matches(Regex("", "t"), ""), (P{{0, 0}}));
}

TEST(TokenizerRegex, LookbehindSeesTextBeforeTheSearchStart) {
  EXPECT_EQ(matches(Regex("(?<=a)b", "t"), "abab"), (P{{1, 2}, {3, 4}}));
}

TEST(TokenizerRegex, CaseInsensitiveContractions) {
  Regex r("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "t");
  EXPECT_EQ(matches(r, "it'S we'Ll I'D"), (P{{2, 4}, {7, 10}, {12, 14}}));
}

TEST(TokenizerRegex, LiteralPatterns) {
  Regex lit = Regex::literal("aa", "t");
  EXPECT_EQ(matches(lit, "aaaaa"), (P{{0, 2}, {2, 4}}));
  Regex special = Regex::literal("a.b", "t");  // no regex meaning
  EXPECT_EQ(matches(special, "axb a.b"), (P{{4, 7}}));
  EXPECT_EQ(matches(Regex::literal("", "t"), "abc"), P{});
}

}  // namespace
}  // namespace difftx::test
