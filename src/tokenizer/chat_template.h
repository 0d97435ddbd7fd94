// Chat formatting: messages -> the prompt text a chat model was trained on.
//
// transformers renders a tokenizer's Jinja `chat_template`; Debian 12 has no Jinja engine for C++,
// so difftx has the templates axolotl users pick with `chat_template:` built in, reproducing the
// output of axolotl's Jinja files (src/axolotl/utils/chat_templates/templates/) exactly:
//   chatml        "<|im_start|>{role}\n{content}<|im_end|>\n" per message;
//                 generation prompt "<|im_start|>assistant\n"; no BOS
//   llama3        bos + "<|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>"
//                 per message (bos before the first only); generation prompt
//                 "<|start_header_id|>assistant<|end_header_id|>\n\n"
//   mistral_v1    bos, then user " [INST] {content} [/INST]", assistant " {content}{eos}"
//   mistral_v2v3  bos, then user "[INST] {content}[/INST]", assistant " {content}{eos}"
//   mistral       the same as mistral_v1
// The mistral formats take only user/assistant messages, alternating and starting with user, as
// their templates require; they have no generation prompt (the text already ends with [/INST]).
// The rendered text is meant to be encoded with add_special_tokens off (the BOS is in the text).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace difftx {

enum class ChatFormat { chatml, llama3, mistral_v1, mistral_v2v3 };

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", ...
  std::string content;
};

// The built-in format named `name`. "tokenizer_default" and "jinja" (axolotl's names for the
// tokenizer's own Jinja template) and every other name throw ConfigError naming the built-in choices;
// for tokenizer_default the message says whether the tokenizer has a Jinja template at all.
ChatFormat chat_format_from_name(std::string_view name, const Tokenizer* tokenizer = nullptr);
std::string_view chat_format_name(ChatFormat format);
// The built-in format a tokenizer's Jinja chat_template writes, recognised by its markers as
// llama.cpp does ("<|im_start|>": chatml; "<|start_header_id|>": llama3; "[INST]": mistral_v1 when
// the template has " [/INST]" (a space before it), else mistral_v2v3); nullopt when none matches.
std::optional<ChatFormat> chat_format_guess(std::string_view jinja);
// "chatml, llama3, mistral, mistral_v1, mistral_v2v3"
std::string_view chat_format_choices();

// Renders the messages. bos/eos are the tokenizer's BOS/EOS strings. Throws TextError when the
// messages break the format's rules (mistral: roles must alternate user/assistant from user).
std::string chat_render(ChatFormat format, std::span<const ChatMessage> messages, std::string_view bos,
                        std::string_view eos, bool add_generation_prompt);
// The same with the tokenizer's bos_token/eos_token (ConfigError when the format needs one it lacks).
std::string chat_render(ChatFormat format, std::span<const ChatMessage> messages, const Tokenizer& tokenizer,
                        bool add_generation_prompt);

}  // namespace difftx
