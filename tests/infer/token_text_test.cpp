// The text of each token of a prompt (infer/token_text.h) with the two tokenizer families of
// ../shared/fixtures: Llama 3's byte-level BPE, whose vocabulary strings are GPT-2's byte alphabet,
// and Mistral's SentencePiece BPE with byte fallback, where a character outside the vocabulary is
// several <0xXX> tokens.
#include "infer/token_text.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace difftx {
namespace {

Tokenizer fixture(const char* name) {
  return Tokenizer::load(std::filesystem::path(DIFFTX_SHARED_DIR) / "fixtures/tokenizers" / name);
}

// The spans cover the decoded prompt in order, without gaps or overlaps.
void expect_spans_tile_the_text(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  DecodeOptions o;
  o.skip_special_tokens = true;
  const std::string whole = tok.decode(ids, o);
  const auto spans = token_spans(tok, ids);
  ASSERT_EQ(spans.size(), ids.size());
  size_t at = 0;
  for (const auto& [b, e] : spans) {
    EXPECT_EQ(b, at);
    EXPECT_GE(e, b);
    at = e;
  }
  EXPECT_EQ(at, whole.size());
}

TEST(TokenTextTest, ByteLevelTokensAreLabelledWithTheTextTheyStandFor) {
  const Tokenizer tok = fixture("llama3");
  const std::vector<int32_t> ids = tok.encode("café 東京 😀 naïve    x");  // no special tokens
  // The vocabulary strings are GPT-2's alphabet ("fÃ©", "ĠæĿ±äº¬"); the labels are the text.
  const std::vector<std::string> raw = tok.id_to_tokens(ids);
  ASSERT_EQ(raw.size(), 8u);
  EXPECT_EQ(raw[2], "ĠæĿ±äº¬");
  EXPECT_EQ(token_labels(tok, ids),
            (std::vector<std::string>{"ca", "fé", "␣東京", "␣😀", "␣naï", "ve", "␣␣␣", "␣x"}));
  expect_spans_tile_the_text(tok, ids);
}

TEST(TokenTextTest, ByteLevelTokensThatStartACharacterShowTheirBytes) {
  const Tokenizer tok = fixture("llama3");
  // 𝔘 (F0 9D 94 98) and ꙮ (EA 99 AE) are each split over byte-level tokens.
  const std::vector<int32_t> ids = tok.encode("a 𝔘 ꙮ b");
  ASSERT_EQ(tok.id_to_tokens(ids), (std::vector<std::string>{"a", "ĠðĿ", "Ķ", "ĺ", "Ġê", "Ļ", "®", "Ġb"}));
  EXPECT_EQ(token_labels(tok, ids), (std::vector<std::string>{"a", "␣<0xF0><0x9D>", "<0x94>", "𝔘", "␣<0xEA>",
                                                               "<0x99>", "ꙮ", "␣b"}));
  expect_spans_tile_the_text(tok, ids);
}

TEST(TokenTextTest, ACharacterOfSeveralByteTokensBelongsToTheLastOne) {
  const Tokenizer tok = fixture("mistral");
  EncodeOptions with_bos;
  with_bos.add_special_tokens = true;
  const std::vector<int32_t> ids = tok.encode("a 𝔘 東京 b\u200dc\ttab\nnl", with_bos);
  const std::vector<std::string> raw = tok.id_to_tokens(ids);
  ASSERT_EQ(raw.size(), 17u);
  ASSERT_EQ(raw[3], "<0xF0>");  // 𝔘 (U+1D518) is four byte tokens
  ASSERT_EQ(raw[6], "<0x98>");
  EXPECT_EQ(token_labels(tok, ids),
            (std::vector<std::string>{"<s>", "a", "␣", "<0xF0>", "<0x9D>", "<0x94>", "𝔘", "␣", "東", "京", "␣b",
                                      "<U+200D>", "c", "⇥", "tab", "↵", "nl"}));
  expect_spans_tile_the_text(tok, ids);
  // The tokens after the byte tokens keep their own text (attention-map --focus relies on it):
  // before, a prefix that ended inside 𝔘 decoded to 3 U+FFFD and shifted every later span.
  DecodeOptions o;
  o.skip_special_tokens = true;
  const std::string whole = tok.decode(ids, o);
  const auto spans = token_spans(tok, ids);
  EXPECT_EQ(whole.substr(spans[8].first, spans[8].second - spans[8].first), "東");
  EXPECT_EQ(whole.substr(spans[9].first, spans[9].second - spans[9].first), "京");
  EXPECT_EQ(spans[0].first, spans[0].second) << "<s>, a special token, has no text";
}

TEST(TokenTextTest, WhitespaceAndInvisibleCharactersAreMadeVisible) {
  EXPECT_EQ(label_visible("a b\n\t"), "a␣b↵⇥");
  EXPECT_EQ(label_visible("\x07\r\x7f"), "<U+0007><U+000D><U+007F>");
  EXPECT_EQ(label_visible("soft\u00adhyphen\u200b\ufeff"), "soft<U+00AD>hyphen<U+200B><U+FEFF>");
  EXPECT_EQ(label_visible("東京 😀"), "東京␣😀");
  EXPECT_EQ(label_visible(""), "");
}

}  // namespace
}  // namespace difftx
