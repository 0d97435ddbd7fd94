// chat_template.cpp: the exact text of each built-in format (what axolotl's Jinja templates render)
// and the errors for what they cannot express.
#include <gtest/gtest.h>

#include <algorithm>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer_test_util.h"

namespace difftx::test {
namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "You are terse."}, {"user", "  What is 2+2?\n"}, {"assistant", "4"}};
const std::vector<ChatMessage> kTurns = {{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};

TEST(TokenizerChatTemplate, Chatml) {
  EXPECT_EQ(chat_render(ChatFormat::chatml, kChat, "<s>", "</s>", false),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\n  What is 2+2?\n<|im_end|>\n"
            "<|im_start|>assistant\n4<|im_end|>\n");
  EXPECT_EQ(chat_render(ChatFormat::chatml, std::vector<ChatMessage>{{"user", "Hi"}}, "", "", true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TokenizerChatTemplate, Llama3TrimsContentAndPutsBosFirst) {
  EXPECT_EQ(chat_render(ChatFormat::llama3, kChat, "<|begin_of_text|>", "<|end_of_text|>", true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(chat_render(ChatFormat::llama3, std::vector<ChatMessage>{{"user", "\x1F\u3000x \u00A0"}}, "B", "E", false),
            "B<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

TEST(TokenizerChatTemplate, Mistral) {
  EXPECT_EQ(chat_render(ChatFormat::mistral_v1, kTurns, "<s>", "</s>", false),
            "<s> [INST] Hi [/INST] Hello!</s> [INST] Bye [/INST]");
  EXPECT_EQ(chat_render(ChatFormat::mistral_v2v3, kTurns, "<s>", "</s>", true),
            "<s>[INST] Hi[/INST] Hello!</s>[INST] Bye[/INST]");
  EXPECT_EQ(error_of([] { chat_render(ChatFormat::mistral_v1, kChat, "<s>", "</s>", false); }),
            "chat format mistral_v1: message 0 has role \"system\"; only user and assistant are supported");
  std::vector<ChatMessage> twice = {{"user", "a"}, {"user", "b"}};
  EXPECT_EQ(error_of([&] { chat_render(ChatFormat::mistral_v2v3, twice, "<s>", "</s>", false); }),
            "chat format mistral_v2v3: conversation roles must alternate user/assistant/user/... (message 1 is user)");
}

TEST(TokenizerChatTemplate, NamesAndJinjaTemplates) {
  EXPECT_EQ(chat_format_from_name("chatml"), ChatFormat::chatml);
  EXPECT_EQ(chat_format_from_name("llama3"), ChatFormat::llama3);
  EXPECT_EQ(chat_format_from_name("mistral"), ChatFormat::mistral_v1);
  EXPECT_EQ(chat_format_from_name("mistral_v2v3"), ChatFormat::mistral_v2v3);
  EXPECT_EQ(error_of([] { chat_format_from_name("vicuna"); }),
            "chat_template \"vicuna\" is not a built-in format (built-in: chatml, llama3, mistral, mistral_v1, "
            "mistral_v2v3)");
  json j = tiny_tokenizer_json({"a"}, {});
  json config = {{"chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}"}, {"bos_token", "a"}};
  Tokenizer with_jinja = from_json(j, &config);
  EXPECT_EQ(error_of([&] { chat_format_from_name("tokenizer_default", &with_jinja); }),
            "chat_template tokenizer_default: the tokenizer's chat template is Jinja, which difftx cannot run (no Jinja "
            "engine in Debian 12); choose the built-in format it corresponds to: chatml, llama3, mistral, mistral_v1, "
            "mistral_v2v3");
  Tokenizer without = from_json(j);
  EXPECT_EQ(error_of([&] { chat_format_from_name("tokenizer_default", &without); }),
            "chat_template tokenizer_default: the tokenizer (tokenizer.json) has no chat_template in "
            "tokenizer_config.json; choose a built-in format: chatml, llama3, mistral, mistral_v1, mistral_v2v3");
  EXPECT_EQ(chat_render(ChatFormat::llama3, std::vector<ChatMessage>{{"user", "x"}}, with_jinja, false),
            "a<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
  EXPECT_EQ(error_of([&] { chat_render(ChatFormat::mistral_v1, kTurns, with_jinja, false); }),
            "chat format mistral_v1 needs an eos_token, and tokenizer.json has none in tokenizer_config.json or "
            "special_tokens_map.json");
}

TEST(TokenizerChatTemplate, RenderedTextEncodesWithMistral) {
  // The rendered prompt holds its own BOS: encode it without add_special_tokens.
  std::string prompt = chat_render(ChatFormat::mistral_v1, kTurns, mistral(), false);
  std::vector<int32_t> ids = mistral().encode(prompt);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 1);  // the </s> after the assistant turn
  // Mistral's legacy normalizer prefixes "\u2581" to each piece between special tokens, so the text
  // after <s> and </s> gains a space: the tokens transformers gives this prompt too.
  EXPECT_EQ(mistral().decode(ids), "<s>  [INST] Hi [/INST] Hello!</s>  [INST] Bye [/INST]");
}

}  // namespace
}  // namespace difftx::test
