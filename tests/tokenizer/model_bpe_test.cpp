// model_bpe.cpp: merge order, unknown characters, byte fallback, prefixes/suffixes, ignore_merges,
// and the errors of a vocab or merge list that contradicts itself. The tiny tokenizers here have
// no pre-tokenizer, so the whole text is one piece.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tokenizer/json_ref.h"
#include "tokenizer/model_bpe.h"
#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

using Ids = std::vector<int32_t>;

TEST(TokenizerBpe, LowestRankFirst) {
  // vocab ids:              0    1    2    3     4     5
  std::vector<std::string> v{"a", "b", "c", "ab", "bc", "abc"};
  EXPECT_EQ(from_json(tiny_tokenizer_json(v, {"b c", "a b", "ab c"})).encode("abc"), (Ids{0, 4}));
  EXPECT_EQ(from_json(tiny_tokenizer_json(v, {"a b", "b c", "ab c"})).encode("abc"), (Ids{5}));
  EXPECT_EQ(from_json(tiny_tokenizer_json(v, {"a b", "b c"})).encode("abcabc"), (Ids{3, 2, 3, 2}));
}

TEST(TokenizerBpe, LeftmostAmongEqualRanks) {
  std::vector<std::string> v{"a", "aa", "aaa"};
  Tokenizer t = from_json(tiny_tokenizer_json(v, {"a a"}));
  EXPECT_EQ(t.encode("aaa"), (Ids{1, 0}));
  EXPECT_EQ(t.encode("aaaaa"), (Ids{1, 1, 0}));
  Tokenizer t2 = from_json(tiny_tokenizer_json(v, {"a a", "aa a"}));
  EXPECT_EQ(t2.encode("aaaa"), (Ids{1, 1}));  // the pair (aa, a) never forms: both a pairs merge first
  EXPECT_EQ(t2.encode("aaa"), (Ids{2}));
}

TEST(TokenizerBpe, NewPairsWithLowerRankMergeNext) {
  //                         0    1    2    3    4     5     6       7
  std::vector<std::string> v{"a", "b", "c", "d", "ab", "cd", "abcd", "bcd"};
  // (c,d) first; then (b,cd) rank 1 beats (a,b) rank 2 although it did not exist at the start.
  Tokenizer t = from_json(tiny_tokenizer_json(v, {"c d", "b cd", "a b", "ab cd"}));
  EXPECT_EQ(t.encode("abcd"), (Ids{0, 7}));
}

TEST(TokenizerBpe, RepeatedMergeKeepsItsLastRank) {
  std::vector<std::string> v{"a", "b", "c", "ab", "bc"};
  Tokenizer t = from_json(tiny_tokenizer_json(v, {"b c", "a b", "b c"}));  // (b,c) ends up rank 2
  EXPECT_EQ(t.encode("abc"), (Ids{3, 2}));
}

TEST(TokenizerBpe, MergesAsPairs) {
  json j = tiny_tokenizer_json({"a", "b", "a b"}, {});
  j["model"]["merges"] = json::array({json::array({"a", "b"})});
  j["model"]["vocab"] = {{"a", 0}, {"b", 1}, {"ab", 2}};
  EXPECT_EQ(from_json(j).encode("ab"), (Ids{2}));
}

TEST(TokenizerBpe, UnknownCharacters) {
  json j = tiny_tokenizer_json({"a", "b", "<unk>"}, {});
  EXPECT_EQ(from_json(j).encode("axyb"), (Ids{0, 1}));  // no unk_token, no byte fallback: dropped
  {
    // The dropped characters are counted, every occurrence (a word that drops is never cached);
    // the ids stay the tokenizers library's.
    DroppedText dropped;
    EncodeOptions o;
    o.dropped = &dropped;
    json ws = j;
    ws["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
    EXPECT_EQ(from_json(ws).encode("axyb axyb ab \u00E9\u00E9 ab", o), (Ids{0, 1, 0, 1, 0, 1, 0, 1}));
    EXPECT_EQ(dropped.characters, 6u);
    EXPECT_EQ(dropped.bytes, 8u);
    EXPECT_EQ(dropped.first, (std::vector<std::string>{"x", "y", "\u00E9"}));
    EXPECT_NE(dropped.warning().find("dropped 8 bytes (6 characters, e.g. \"x\", \"y\", \"\u00E9\")"),
              std::string::npos) << dropped.warning();
    DroppedText controls;  // one line: control characters are escaped; one byte, one character
    o.dropped = &controls;
    from_json(j).encode("a\tb", o);
    EXPECT_NE(controls.warning().find("dropped 1 byte (1 character, e.g. \"\\t\")"), std::string::npos)
        << controls.warning();
    from_json(j).encode("a\nb\x01", o);
    EXPECT_NE(controls.warning().find("e.g. \"\\t\", \"\\n\", \"\\u0001\")"), std::string::npos)
        << controls.warning();
    DroppedText none;
    o.dropped = &none;
    from_json(ws).encode("ab ab", o);
    EXPECT_EQ(none.bytes, 0u);
    EXPECT_EQ(none.warning(), "");
  }
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(from_json(j).encode("axyb"), (Ids{0, 2, 2, 1}));
  DroppedText with_unk;
  EncodeOptions counted;
  counted.dropped = &with_unk;
  from_json(j).encode("axyb", counted);
  EXPECT_EQ(with_unk.bytes, 0u) << "an unk token keeps the characters";
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(from_json(j).encode("axyb\u00E9"), (Ids{0, 2, 1, 2}));
}

TEST(TokenizerBpe, ByteFallback) {
  //                         0    1    2        3         4         5
  std::vector<std::string> v{"a", "b", "<unk>", "<0x78>", "<0xC3>", "<0xA9>"};
  json j = tiny_tokenizer_json(v, {});
  j["model"]["byte_fallback"] = true;
  EXPECT_EQ(from_json(j).encode("axb\u00E9"), (Ids{0, 3, 1, 4, 5}));
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(from_json(j).encode("a\u00E8"), (Ids{0, 2}));  // C3 A8: <0xA8> missing -> unk
  EXPECT_EQ(from_json(j).encode("\u00E8x"), (Ids{3, 2}));  // tokenizers emits a pending unk after byte tokens
}

TEST(TokenizerBpe, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  json j = tiny_tokenizer_json({"a", "##b", "ab", "##c", "abc"}, {"a ##b", "ab ##c"});
  j["model"]["continuing_subword_prefix"] = "##";
  EXPECT_EQ(from_json(j).encode("abc"), (Ids{4}));
  EXPECT_EQ(from_json(j).encode("ab"), (Ids{2}));
  json s = tiny_tokenizer_json({"a", "b", "b</w>", "ab</w>", "ab"}, {"a b</w>", "a b"});
  s["model"]["end_of_word_suffix"] = "</w>";
  EXPECT_EQ(from_json(s).encode("ab"), (Ids{3}));
}

TEST(TokenizerBpe, IgnoreMerges) {
  json j = tiny_tokenizer_json({"a", "b", "c", "ab", "abc"}, {"a b"});
  EXPECT_EQ(from_json(j).encode("abc"), (Ids{3, 2}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(from_json(j).encode("abc"), (Ids{4}));
  EXPECT_EQ(from_json(j).encode("abcabc"), (Ids{3, 2, 3, 2}));
}

TEST(TokenizerBpe, CachedAndLongPiecesGiveTheSameIds) {
  Tokenizer t = from_json(tiny_tokenizer_json({"a", "b", "ab", "abab"}, {"a b", "ab ab"}));
  EXPECT_EQ(t.encode("ababa"), (Ids{3, 0}));
  EXPECT_EQ(t.encode("ababa"), (Ids{3, 0}));  // from the cache
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "ab";  // longer than the cached piece limit
  Ids ids = t.encode(long_text);
  EXPECT_EQ(ids, Ids(150, 3));
}

TEST(TokenizerBpe, ContradictoryFilesAreErrors) {
  auto err = [](const json& j) { return error_of([&] { from_json(j); }); };
  json j = tiny_tokenizer_json({"a", "b", "ab"}, {"a b", "a zz"});
  EXPECT_EQ(err(j), "tokenizer.json: model.merges[1] uses \"zz\", which is not in model.vocab");
  j = tiny_tokenizer_json({"a", "b"}, {"a b"});
  EXPECT_EQ(err(j), "tokenizer.json: model.merges[0] makes \"ab\", which is not in model.vocab");
  j = tiny_tokenizer_json({"a", "b", "ab"}, {"a  b"});
  EXPECT_EQ(err(j), "tokenizer.json: model.merges[0] \"a  b\" must be two tokens separated by one space");
  j = tiny_tokenizer_json({"a", "b", "ab"}, {});
  j["model"]["merges"] = json::array({7});
  EXPECT_EQ(err(j), "tokenizer.json: model.merges[0] must be a string \"a b\" or a pair [\"a\", \"b\"]");
  j = tiny_tokenizer_json({"a", "b"}, {});
  j["model"]["vocab"]["c"] = 1;
  EXPECT_EQ(err(j), "tokenizer.json: model.vocab gives id 1 to both \"b\" and \"c\"");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["vocab"]["b"] = -4;
  EXPECT_EQ(err(j), "tokenizer.json: model.vocab[\"b\"] must be an id from 0 to 2147483647");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["vocab"]["b"] = 2000000000;  // would need a 2e9-entry id table
  EXPECT_EQ(err(j), "tokenizer.json: model.vocab[\"b\"] is id 2000000000, but model.vocab has only 2 entries: ids must "
                    "be below entries + 65536 (a vocabulary is numbered from 0 without large gaps)");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["vocab"]["b"] = 60000;  // a gap is fine
  EXPECT_EQ(err(j), "");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(err(j), "tokenizer.json: model.unk_token \"<unk>\" is not in model.vocab");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["dropout"] = 0.1;
  EXPECT_EQ(err(j),
            "tokenizer.json: model.dropout must be null: BPE dropout (random merges) is not supported, since encoding "
            "must be reproducible");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["type"] = "Unigram";
  EXPECT_EQ(err(j), "tokenizer.json: model.type \"Unigram\" is not supported (supported: BPE)");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["cache_capacity"] = 10;
  EXPECT_EQ(err(j).substr(0, 67), "tokenizer.json: model.cache_capacity is not a known option here (kn");
  j = tiny_tokenizer_json({"a"}, {});
  j["model"]["dropout"] = 0.0;  // the same as null
  EXPECT_EQ(err(j), "");
}

}  // namespace
}  // namespace difftx::test

namespace difftx::test {
namespace {

// Mistral's model on normalized text ("\u2581" for spaces): cutting before each word's "\u2581"
// must give exactly the ids of merging the whole text at once.
TEST(TokenizerBpe, CutBeforeMetaspaceGivesTheWholeTextIds) {
  json j = tok::tokenizer_json_read(tokenizer_fixture("mistral") / "tokenizer.json");
  const std::string label = "tokenizer.json";
  auto model = tok::BpeModel::from_json(tok::JsonRef(j["model"], label, "model"));
  ASSERT_TRUE(model->cuts_at_metaspace());
  std::string raw = read_text(std::filesystem::path(DIFFTX_SHARED_DIR) / "corpora" / "war-and-peace.txt").substr(0, 60000);
  raw += " \u00E9t\u00E9   spaces\u3000\U0001F999x  ";
  std::string text = "\u2581";
  for (char c : raw) {
    if (c == ' ') text += "\u2581";
    else text += c;
  }
  std::vector<int32_t> cut, whole;
  tok::BpeCache cache(1 << 10);
  model->tokenize(text, cut, &cache);
  model->tokenize_reference(text, whole);
  EXPECT_GT(whole.size(), 10000u);
  EXPECT_EQ(cut, whole);

  // A vocab with a token that joins a character and a following "\u2581" must not be cut.
  json v = tiny_tokenizer_json({"a", "\u2581", "a\u2581"}, {"a \u2581"});
  auto joined = tok::BpeModel::from_json(tok::JsonRef(v["model"], label, "model"));
  EXPECT_FALSE(joined->cuts_at_metaspace());
  std::vector<int32_t> ids;
  joined->tokenize("a\u2581a", ids, nullptr);
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 0}));
}

}  // namespace
}  // namespace difftx::test
