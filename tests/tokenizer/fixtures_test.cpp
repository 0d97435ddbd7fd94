// The shared fixtures: llama.cpp's 46 tokenizer test strings, id for id, for Llama-3 (ids from
// llama.cpp's suite) and Mistral (ids from an independent JavaScript implementation), plus
// decode(encode(s)) == s and streaming decode == decode on every case.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "test_util.h"
#include "tokenizer/decode_stream.h"
#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/utf8.h"

namespace difftx::test {
namespace {

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// Every check that needs one fixture, in one test so the tokenizer loads once per process.
void check_fixture(const std::string& name, const Tokenizer& tok) {
  auto cases = read_cases(tokenizer_fixture(name) / "cases.inp");
  auto expected = read_expected_ids(tokenizer_fixture(name) / "cases.out");
  ASSERT_EQ(cases.size(), 46u);
  ASSERT_EQ(expected.size(), 46u);
  int matched = 0, roundtrips = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<int32_t> ids = tok.encode(cases[i]);
    EXPECT_EQ(ids, expected[i]) << name << " case " << i << " \"" << cases[i] << "\"\n  expected" << show(expected[i])
                                << "\n  got     " << show(ids);
    matched += ids == expected[i];
    std::string text = tok.decode(ids);
    EXPECT_EQ(text, cases[i]) << name << " case " << i << ": decode(encode(s)) != s";
    roundtrips += text == cases[i];
    DecodeStream stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.step(id);
    streamed += stream.finish();
    EXPECT_EQ(streamed, text) << name << " case " << i << ": streamed decode differs";
  }
  EXPECT_EQ(matched, 46);
  EXPECT_EQ(roundtrips, 46);
}

TEST(TokenizerFixtures, CasesFileDelimitsFortySixStrings) {
  auto cases = read_cases(tokenizer_fixture("llama3") / "cases.inp");
  ASSERT_EQ(cases.size(), 46u);
  EXPECT_EQ(cases[0], "ied 4 \u00BD months");
  EXPECT_EQ(cases[2], "");  // the empty string between two separators
  EXPECT_EQ(cases[3], " ");
  EXPECT_EQ(cases[7], "\n");  // a separator line's own newlines are not part of the case
  EXPECT_EQ(cases[10], "\t\n");
  EXPECT_EQ(cases[45].substr(0, 5), "\n \n\n ");
  EXPECT_EQ(read_cases(tokenizer_fixture("mistral") / "cases.inp"), cases);
  auto mistral_ids = read_expected_ids(tokenizer_fixture("mistral") / "cases.out");
  EXPECT_TRUE(mistral_ids[2].empty());  // written as a lone space
  EXPECT_EQ(mistral_ids[0], (std::vector<int32_t>{613, 286, 28705, 28781, 28705, 29039, 3370}));
}

TEST(TokenizerFixtures, Llama3AllCasesIdForIdAndRoundTrip) { check_fixture("llama3", llama3()); }

TEST(TokenizerFixtures, MistralAllCasesIdForIdAndRoundTrip) { check_fixture("mistral", mistral()); }

TEST(TokenizerFixtures, Llama3SpecialTokensAndOptions) {
  const Tokenizer& t = llama3();
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_EQ(t.bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_id(), 128001);
  EXPECT_EQ(t.encode("Hello, world!"), (std::vector<int32_t>{9906, 11, 1917, 0}));
  // Special tokens written in the text are found only when allowed.
  EXPECT_EQ(t.encode("<|begin_of_text|>Hi<|eot_id|>"), (std::vector<int32_t>{128000, 13347, 128009}));
  EncodeOptions plain;
  plain.parse_special = false;
  EXPECT_EQ(t.encode("<|eot_id|>", plain), (std::vector<int32_t>{27, 91, 68, 354, 851, 91, 29}));
  // This tokenizer.json's post-processor is ByteLevel only and its tokenizer_config.json sets no
  // add_bos_token: like transformers, add_special_tokens adds nothing.
  EncodeOptions special;
  special.add_special_tokens = true;
  EXPECT_EQ(t.encode("Hi", special), (std::vector<int32_t>{13347}));
  EXPECT_TRUE(t.special_prefix().empty());
  // decode keeps special tokens unless asked.
  EXPECT_EQ(t.decode(std::vector<int32_t>{128000, 13347, 128009}), "<|begin_of_text|>Hi<|eot_id|>");
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  EXPECT_EQ(t.decode(std::vector<int32_t>{128000, 13347, 128009}, skip), "Hi");
  EXPECT_EQ(*t.id_to_token(1917), "\u0120world");
  EXPECT_EQ(t.token_to_id("<|eot_id|>"), 128009);
  EXPECT_TRUE(t.is_special(128009));
  EXPECT_FALSE(t.is_special(1917));
  EXPECT_NE(t.chat_template().find("<|start_header_id|>"), std::string::npos);
  // Invalid UTF-8 is an error that gives the offset; unknown ids are errors.
  EXPECT_EQ(error_of([&] { t.encode("ok \xC3\x28"); }), "text is not valid UTF-8 at byte 3 (0xC3)");
  EXPECT_EQ(error_of([&] { t.encode(std::string("a\xED\xA0\x80", 4)); }),  // a UTF-16 surrogate
            "text is not valid UTF-8 at byte 1 (0xED)");
  EXPECT_EQ(error_of([&] { t.encode("\xC0\xAF"); }), "text is not valid UTF-8 at byte 0 (0xC0)");  // overlong '/'
  EXPECT_EQ(error_of([&] { t.encode("abc\xE2\x82"); }), "text is not valid UTF-8 at byte 3 (0xE2)");  // truncated
  EXPECT_EQ(error_of([&] { t.decode(std::vector<int32_t>{5, 128256}); }),
            "id 128256 is not in the vocabulary of " + (tokenizer_fixture("llama3") / "tokenizer.json").string() +
                " (ids 0..128255)");
  EXPECT_TRUE(error_of([&] { t.decode(std::vector<int32_t>{-1}); }).starts_with("id -1 is not in the vocabulary of "));
}

TEST(TokenizerFixtures, Llama3WithAddBosTokenInItsConfig) {
  // tokenizer_config.json's add_bos_token adds the BOS this tokenizer.json's post-processor lacks.
  TempDir dir;
  std::filesystem::copy_file(tokenizer_fixture("llama3") / "tokenizer.json", dir / "tokenizer.json");
  json config = json::parse(read_text(tokenizer_fixture("llama3") / "tokenizer_config.json"));
  config["add_bos_token"] = true;
  write_text(dir / "tokenizer_config.json", config.dump());
  Tokenizer t = Tokenizer::load(dir.path());
  EncodeOptions special;
  special.add_special_tokens = true;
  EXPECT_EQ(t.encode("Hello, world!", special), (std::vector<int32_t>{128000, 9906, 11, 1917, 0}));
  EXPECT_EQ(t.encode("<|begin_of_text|>Hi", special), (std::vector<int32_t>{128000, 128000, 13347}));
  EXPECT_EQ(t.encode("Hello, world!"), (std::vector<int32_t>{9906, 11, 1917, 0}));
}

TEST(TokenizerFixtures, MistralSpecialTokensAndOptions) {
  const Tokenizer& t = mistral();
  EXPECT_EQ(t.vocab_size(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EncodeOptions special;
  special.add_special_tokens = true;
  // TemplateProcessing "<s> $A" (and add_bos_token: true in tokenizer_config.json): one BOS.
  EXPECT_EQ(t.encode("Hello world", special), (std::vector<int32_t>{1, 22557, 1526}));
  EXPECT_EQ(t.encode("Hello world"), (std::vector<int32_t>{22557, 1526}));
  // Text between added tokens is normalized on its own (the Prepend normalizer adds ▁ to each piece).
  EXPECT_EQ(t.encode("<s>Hello</s>"), (std::vector<int32_t>{1, 22557, 2}));
  EncodeOptions plain;
  plain.parse_special = false;
  std::vector<int32_t> as_text = t.encode("<s>", plain);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 1), 0);
  EXPECT_EQ(t.decode(as_text), "<s>");
  // Byte fallback: a character missing from the vocab becomes its UTF-8 bytes <0xXX>.
  std::vector<int32_t> ids = t.encode("\xF0\x9F\xA6\x99");  // U+1F999, not in the vocab
  ASSERT_EQ(ids.size(), 5u);                                 // ▁ + 4 bytes
  EXPECT_EQ(*t.id_to_token(ids[1]), "<0xF0>");
  EXPECT_EQ(t.decode(ids), "\xF0\x9F\xA6\x99");
  // Bytes that are not UTF-8 decode to U+FFFD, one per byte (ByteFallback decoder).
  EXPECT_EQ(t.decode(std::vector<int32_t>{*t.token_to_id("<0xF0>"), *t.token_to_id("<0x9F>")}), "\uFFFD\uFFFD");
}

TEST(TokenizerFixtures, Llama3RandomTextAndStreaming) {
  const Tokenizer& t = llama3();
  uint64_t state = 12345;
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  // Valid UTF-8 from a mix of ASCII, Latin, CJK, emoji, combining marks and spaces.
  const char32_t pool[] = {'a', 'Z', ' ', ' ', '\n', '\t', '7', '\'', '!', 0xE9, 0x301, 0x4E2D, 0x1F600,
                           0x3000, 0xA0, 0x85, 0x180E, 0x2028, 0x0130, 0xFEFF, 0x10FFFF, 0x7F, 0x0};
  for (int round = 0; round < 300; ++round) {
    std::string s;
    size_t len = next() % 40;
    for (size_t k = 0; k < len; ++k) tok::utf8_append(s, pool[next() % std::size(pool)]);
    std::vector<int32_t> ids = t.encode(s);
    ASSERT_EQ(t.decode(ids), s) << "round " << round;
    DecodeStream stream(t);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.step(id);
    ASSERT_EQ(streamed + stream.finish(), s) << "round " << round;
  }
  int errors = 0;
  for (int round = 0; round < 300; ++round) {
    std::string s;
    size_t len = next() % 12;
    for (size_t k = 0; k < len; ++k) s.push_back(static_cast<char>(next() & 0xFF));
    try {
      t.decode(t.encode(s));
    } catch (const TextError&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);  // most random byte strings are not UTF-8

  // U+1F999 is three byte-level tokens in Llama-3 ("\u00F0\u0141", "\u00A6", "\u013B"): no piece may
  // carry half of it.
  const std::string llama = "\xF0\x9F\xA6\x99";
  std::vector<int32_t> ids = t.encode("a " + llama + " b");
  ASSERT_EQ(t.encode(llama), (std::vector<int32_t>{9468, 99, 247}));
  DecodeStream stream(t);
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(stream.step(id));
  pieces.push_back(stream.finish());
  std::string joined;
  for (const std::string& p : pieces) {
    EXPECT_EQ(tok::utf8_find_invalid(p), tok::kValidUtf8);
    EXPECT_EQ(p.find("\uFFFD"), std::string::npos);
    joined += p;
  }
  EXPECT_EQ(joined, "a " + llama + " b");
  // Primed with a prompt, the pieces continue it: joined to the prompt's text they give the
  // decode of the whole sequence (Mistral's "▁" word starts keep their space after the prompt).
  const Tokenizer& m = mistral();
  for (const std::string& prompt : {std::string("Prince Andrew looked at"), std::string("a " + llama),
                                    std::string("The year 1812 was")}) {
    const std::vector<int32_t> p_ids = m.encode(prompt), all_ids = m.encode(prompt + " the old prince, 12");
    ASSERT_EQ(std::vector<int32_t>(all_ids.begin(), all_ids.begin() + static_cast<std::ptrdiff_t>(p_ids.size())), p_ids);
    DecodeOptions skip;
    skip.skip_special_tokens = true;
    DecodeStream primed(m, skip);
    primed.prime(p_ids);
    std::string text = m.decode(p_ids, skip);
    for (size_t i = p_ids.size(); i < all_ids.size(); ++i) text += primed.step(all_ids[i]);
    text += primed.finish();
    EXPECT_EQ(text, m.decode(all_ids, skip)) << prompt;
  }
  // Ids that end inside a character: nothing until finish(), which gives what decode() gives.
  DecodeStream cut(t);
  EXPECT_EQ(cut.step(9468), "");
  EXPECT_EQ(cut.step(99), "");
  EXPECT_EQ(cut.finish(), t.decode(std::vector<int32_t>{9468, 99}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{9468, 99}), "\uFFFD");  // one maximal invalid subsequence

  // Concurrent encodes of one Tokenizer (each takes its own word cache) give the sequential ids.
  const std::string corpus =
      read_text(std::filesystem::path(DIFFTX_SHARED_DIR) / "corpora" / "war-and-peace.txt").substr(0, 400000);
  std::vector<std::string> parts;
  for (size_t k = 0; k < 8; ++k) parts.push_back(corpus.substr(k * 50000, 50000));
  std::vector<std::vector<int32_t>> sequential, parallel(parts.size());
  for (const std::string& p : parts) sequential.push_back(t.encode(p));
  std::vector<std::thread> threads;
  for (size_t w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (size_t k = w; k < parts.size(); k += 4) parallel[k] = t.encode(parts[k]);
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(parallel, sequential);
}

}  // namespace
}  // namespace difftx::test
