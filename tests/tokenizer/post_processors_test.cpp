// post_processors.cpp and the BOS/EOS flags of tokenizer_config.json.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

using Ids = std::vector<int32_t>;

// vocab: 0 "a", 1 "b", 2 "ab"; added specials 3 "<s>", 4 "</s>".
json base() {
  json j = tiny_tokenizer_json({"a", "b", "ab"}, {"a b"});
  j["added_tokens"] = json::array(
      {{{"id", 3}, {"content", "<s>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
        {"normalized", false}, {"special", true}},
       {{"id", 4}, {"content", "</s>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
        {"normalized", false}, {"special", true}}});
  return j;
}

json special(const std::string& token, int type_id = 0) { return {{"SpecialToken", {{"id", token}, {"type_id", type_id}}}}; }
json seq(const std::string& id, int type_id = 0) { return {{"Sequence", {{"id", id}, {"type_id", type_id}}}}; }

json template_processing(json single, json pair) {
  return {{"type", "TemplateProcessing"},
          {"single", std::move(single)},
          {"pair", std::move(pair)},
          {"special_tokens",
           {{"<s>", {{"id", "<s>"}, {"ids", {3}}, {"tokens", {"<s>"}}}},
            {"</s>", {{"id", "</s>"}, {"ids", {4}}, {"tokens", {"</s>"}}}}}}};
}

EncodeOptions with_special() {
  EncodeOptions o;
  o.add_special_tokens = true;
  return o;
}

TEST(TokenizerPostProcessors, TemplateProcessingSingle) {
  json j = base();
  j["post_processor"] = template_processing({special("<s>"), seq("A"), special("</s>")},
                                            {special("<s>"), seq("A"), special("</s>"), seq("B", 1), special("</s>", 1)});
  Tokenizer t = from_json(j);
  EXPECT_EQ(t.encode("ab", with_special()), (Ids{3, 2, 4}));
  EXPECT_EQ(t.encode("ab"), (Ids{2}));
  EXPECT_EQ(t.encode("", with_special()), (Ids{3, 4}));
}

TEST(TokenizerPostProcessors, SequenceOfByteLevelAndTemplate) {
  // The shape of Meta-Llama-3's tokenizer.json: ByteLevel, then "<|begin_of_text|> $A".
  json j = base();
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
        template_processing({special("<s>"), seq("A")}, {special("<s>"), seq("A"), special("<s>", 1), seq("B", 1)})}}};
  EXPECT_EQ(from_json(j).encode("ab", with_special()), (Ids{3, 2}));
}

TEST(TokenizerPostProcessors, ConfigFlagsAddOrRemoveBosAndEos) {
  json j = base();  // no post-processor
  json config = {{"add_bos_token", true}, {"add_eos_token", true}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
  EXPECT_EQ(from_json(j, &config).encode("ab", with_special()), (Ids{3, 2, 4}));
  EXPECT_EQ(from_json(j, &config).encode("ab"), (Ids{2}));
  // A template that already adds BOS gets no second one; add_bos_token false removes it.
  j["post_processor"] = template_processing({special("<s>"), seq("A")}, {special("<s>"), seq("A"), seq("B", 1)});
  json bos_only = {{"add_bos_token", true}, {"bos_token", "<s>"}};
  EXPECT_EQ(from_json(j, &bos_only).encode("ab", with_special()), (Ids{3, 2}));
  json no_bos = {{"add_bos_token", false}, {"bos_token", "<s>"}};
  EXPECT_EQ(from_json(j, &no_bos).encode("ab", with_special()), (Ids{2}));
  // transformers writes special tokens as AddedToken objects too.
  json object_form = {{"add_eos_token", true},
                      {"eos_token", {{"__type", "AddedToken"}, {"content", "</s>"}, {"lstrip", false}}}};
  EXPECT_EQ(from_json(j, &object_form).encode("ab", with_special()), (Ids{3, 2, 4}));
  json missing = {{"add_bos_token", true}};
  EXPECT_EQ(error_of([&] { from_json(j, &missing); }),
            "tokenizer_config.json: add_bos_token is true but the bos_token \"\" is not a token of the tokenizer");
}

TEST(TokenizerPostProcessors, SpecialTokensMapSuppliesBosAndEos) {
  TempDir dir;
  json j = base();
  write_text(dir / "tokenizer.json", j.dump());
  write_text(dir / "tokenizer_config.json", json({{"add_bos_token", true}}).dump());
  write_text(dir / "special_tokens_map.json", json({{"bos_token", "<s>"}, {"eos_token", "</s>"}}).dump());
  Tokenizer t = Tokenizer::load(dir.path());
  EXPECT_EQ(t.bos_id(), 3);
  EXPECT_EQ(t.eos_id(), 4);
  EXPECT_EQ(t.encode("b", with_special()), (Ids{3, 1}));
}

TEST(TokenizerPostProcessors, Errors) {
  json j = base();
  j["post_processor"] = {{"type", "RobertaProcessing"}, {"sep", {"</s>", 4}}, {"cls", {"<s>", 3}}};
  EXPECT_EQ(error_of([&] { from_json(j); }),
            "tokenizer.json: post_processor.type \"RobertaProcessing\" is not supported (supported: TemplateProcessing, "
            "ByteLevel, Sequence)");
  j["post_processor"] = template_processing({special("<cls>"), seq("A")}, {seq("A"), seq("B")});
  EXPECT_EQ(error_of([&] { from_json(j); }),
            "tokenizer.json: post_processor.single[0].SpecialToken.id \"<cls>\" is not in special_tokens");
  j["post_processor"] = template_processing({seq("A"), seq("B")}, {seq("A"), seq("B")});
  EXPECT_EQ(error_of([&] { from_json(j); }), "tokenizer.json: post_processor.single must hold $A exactly once and no $B");
  j["post_processor"] = {{"type", "Sequence"},
                         {"processors", {{{"type", "ByteLevel"}}, {{"type", "BertProcessing"}}}}};
  EXPECT_EQ(error_of([&] { from_json(j); }).substr(0, 70),
            "tokenizer.json: post_processor.processors[1].type \"BertProcessing\" is ");
}

}  // namespace
}  // namespace difftx::test

namespace difftx::test {
namespace {

TEST(TokenizerPostProcessors, ConfigAddPrefixSpaceMustAgreeWithThePreTokenizer) {
  json j = tiny_tokenizer_json({"a"}, {});
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  json same = {{"add_prefix_space", false}};
  EXPECT_EQ(error_of([&] { from_json(j, &same); }), "");
  json other = {{"add_prefix_space", true}};
  EXPECT_EQ(error_of([&] { from_json(j, &other); }),
            "tokenizer_config.json: add_prefix_space is true, but tokenizer.json's pre-tokenizer adds a prefix space: "
            "false; transformers would rebuild the pre-tokenizer for it, which difftx does not do (set it in "
            "tokenizer.json and remove the key)");
  j["pre_tokenizer"] = nullptr;
  EXPECT_EQ(error_of([&] { from_json(j, &same); }),
            "tokenizer_config.json: add_prefix_space is false, but tokenizer.json's pre-tokenizer has no ByteLevel or "
            "Metaspace step; transformers would rebuild the pre-tokenizer for it, which difftx does not do (set it in "
            "tokenizer.json and remove the key)");
  json null_value = {{"add_prefix_space", nullptr}};
  EXPECT_EQ(error_of([&] { from_json(j, &null_value); }), "");
}

}  // namespace
}  // namespace difftx::test
