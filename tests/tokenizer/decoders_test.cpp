// decoders.cpp: each type on token lists (examples from tokenizers' tests), lossy UTF-8, and
// transformers' clean-up.
#include <gtest/gtest.h>

#include "tokenizer/decode_stream.h"
#include "tokenizer/decoders.h"
#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

using V = std::vector<std::string>;

TEST(TokenizerDecoders, ByteLevel) {
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  EXPECT_EQ(decode_chain(bl, {"Hello", "\u0120my", "\u0120friend", ",", "\u0120how", "?"}), (V{"Hello my friend, how?"}));
  // A token with a character outside the byte alphabet is kept as it is.
  EXPECT_EQ(decode_chain(bl, {"Hello", "\u0120there", "\u0120", "[PA D]"}), (V{"Hello there [PA D]"}));
  EXPECT_EQ(decode_chain(bl, {"\u00E4\u00B8\u0143"}), (V{"\u4E2D"}));  // bytes E4 B8 AD
  EXPECT_EQ(decode_chain(bl, {"\u00E4\u00B8"}), (V{"\uFFFD"}));         // incomplete: one U+FFFD
  EXPECT_EQ(decode_chain(bl, {}), (V{""}));
}

TEST(TokenizerDecoders, ByteFallback) {
  json bf = {{"type", "ByteFallback"}};
  EXPECT_EQ(decode_chain(bf, {"Hey", "friend!"}), (V{"Hey", "friend!"}));
  EXPECT_EQ(decode_chain(bf, {"<0x61>"}), (V{"a"}));
  EXPECT_EQ(decode_chain(bf, {"<0xE5>"}), (V{"\uFFFD"}));
  EXPECT_EQ(decode_chain(bf, {"<0xE5>", "<0x8f>"}), (V{"\uFFFD", "\uFFFD"}));
  EXPECT_EQ(decode_chain(bf, {"<0xE5>", "<0x8f>", "<0xab>"}), (V{"\u53EB"}));
  EXPECT_EQ(decode_chain(bf, {"<0xE5>", "<0x8f>", "<0xab>", "a"}), (V{"\u53EB", "a"}));
  EXPECT_EQ(decode_chain(bf, {"<0xE5>", "<0x8f>", "a"}), (V{"\uFFFD", "\uFFFD", "a"}));
  EXPECT_EQ(decode_chain(bf, {"<0xZZ>", "<0x6>"}), (V{"<0xZZ>", "<0x6>"}));
}

TEST(TokenizerDecoders, ReplaceFuseStrip) {
  json rep = {{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}};
  EXPECT_EQ(decode_chain(rep, {"\u2581Hey", "\u2581\u2581x"}), (V{" Hey", "  x"}));
  EXPECT_EQ(decode_chain({{"type", "Fuse"}}, {"a", "b", "c"}), (V{"abc"}));
  json strip_h = {{"type", "Strip"}, {"content", "H"}, {"start", 1}, {"stop", 0}};
  EXPECT_EQ(decode_chain(strip_h, {"Hey", " friend!", "HHH"}), (V{"ey", " friend!", "HH"}));
  json strip_y = {{"type", "Strip"}, {"content", "y"}, {"start", 0}, {"stop", 1}};
  EXPECT_EQ(decode_chain(strip_y, {"Hey", " friend!"}), (V{"He", " friend!"}));
  json strip_both = {{"type", "Strip"}, {"content", " "}, {"start", 5}, {"stop", 5}};
  EXPECT_EQ(decode_chain(strip_both, {"   ", "  x  "}), (V{"", "x"}));
}

TEST(TokenizerDecoders, Metaspace) {
  json always = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(decode_chain(always, {"\u2581Hey", "\u2581friend!"}), (V{"Hey", " friend!"}));
  json never = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}, {"split", true}};
  EXPECT_EQ(decode_chain(never, {"\u2581Hey", "\u2581friend!"}), (V{" Hey", " friend!"}));
}

TEST(TokenizerDecoders, SequenceLikeMistral) {
  json mistral = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(decode_chain(mistral, {"\u2581Hello", "\u2581", "<0xE2>", "<0x82>", "<0xAC>", "!"}), (V{"Hello \u20AC!"}));
}

// A Strip decoder that removes more than one leading space (fuzz finding
// fuzz/regressions/tokenizer/strip-start-2-stream-differs): the streamed pieces still join to
// decode() of all ids, also after spaces that decode to nothing on their own, and after prime().
TEST(TokenizerDecoders, StreamingWithStripOfTwoLeadingSpaces) {
  json t = tiny_tokenizer_json({"\u2581", "a", "\u2581a", "b"}, {});
  t["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 2}, {"stop", 0}}}}};
  const Tokenizer tok = from_json(t);
  const std::vector<std::vector<int32_t>> sequences = {
      {1, 0, 2, 3}, {0, 2}, {0, 0, 0, 2}, {1, 0, 0, 2, 0, 0, 0, 1}, {3, 0, 0, 0, 0, 3}, {0, 0}};
  for (const std::vector<int32_t>& ids : sequences) {
    DecodeStream stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.step(id);
    EXPECT_EQ(streamed + stream.finish(), tok.decode(ids)) << "ids of length " << ids.size();
    for (size_t cut = 1; cut < ids.size(); ++cut) {
      const std::vector<int32_t> prompt(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(cut));
      DecodeStream primed(tok);
      primed.prime(prompt);
      std::string text = tok.decode(prompt);
      for (size_t i = cut; i < ids.size(); ++i) text += primed.step(ids[i]);
      EXPECT_EQ(text + primed.finish(), tok.decode(ids)) << "prompt of " << cut << " ids";
    }
  }
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 0, 0, 2}), "a   a");
}

TEST(TokenizerDecoders, UnsupportedTypeNamesItsPath) {
  EXPECT_EQ(error_of([] { decode_chain({{"type", "WordPiece"}, {"prefix", "##"}}, {}); }),
            "tokenizer.json: decoder.type \"WordPiece\" is not supported (supported: ByteLevel, Replace, ByteFallback, "
            "Fuse, Strip, Metaspace, Sequence)");
  EXPECT_EQ(error_of([] { decode_chain({{"type", "Strip"}, {"content", "ab"}, {"start", 1}, {"stop", 0}}, {}); }),
            "tokenizer.json: decoder.content must be a string of one character, got \"ab\"");
}

TEST(TokenizerDecoders, LossyUtf8LikeRust) {
  auto lossy = [](std::string_view s) {
    std::string out;
    tok::utf8_lossy_append(s, out);
    return out;
  };
  EXPECT_EQ(lossy("ok"), "ok");
  EXPECT_EQ(lossy("\xC0\x80"), "\uFFFD\uFFFD");           // C0 is never valid
  EXPECT_EQ(lossy("\xE2\x82" "x"), "\uFFFDx");            // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate: ED then two stray bytes
  EXPECT_EQ(lossy("\xF0\x9F\xA6"), "\uFFFD");
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");  // above U+10FFFF
}

TEST(TokenizerDecoders, CleanUpTokenizationSpaces) {
  std::string s = "Hello , world ! I do n't know . It 's fine ?";
  clean_up_tokenization(s);
  EXPECT_EQ(s, "Hello, world! I don't know. It's fine?");
}

}  // namespace
}  // namespace difftx::test
