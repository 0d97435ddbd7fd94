#include "tokenizer/chat_template.h"

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace difftx {

namespace {

// Jinja's `trim` filter is Python's str.strip(): White_Space plus U+001C..U+001F.
bool python_space(char32_t c) { return tok::is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

std::string_view trim(std::string_view s) {
  size_t begin = 0, end = s.size();
  while (begin < end) {
    size_t next = begin;
    if (!python_space(tok::utf8_next(s, next))) break;
    begin = next;
  }
  while (end > begin) {
    if (!python_space(tok::utf8_prev(s, end))) break;
    --end;
    while (end > begin && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  }
  return s.substr(begin, end - begin);
}

void check_mistral(std::span<const ChatMessage> messages, ChatFormat format) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "user" && role != "assistant")
      fail<TextError>("chat format {}: message {} has role \"{}\"; only user and assistant are supported",
                      chat_format_name(format), i, role);
    if ((role == "user") != (i % 2 == 0))
      fail<TextError>("chat format {}: conversation roles must alternate user/assistant/user/... (message {} is {})",
                      chat_format_name(format), i, role);
  }
}

}  // namespace

std::string_view chat_format_choices() { return "chatml, llama3, mistral, mistral_v1, mistral_v2v3"; }

std::string_view chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::chatml: return "chatml";
    case ChatFormat::llama3: return "llama3";
    case ChatFormat::mistral_v1: return "mistral_v1";
    case ChatFormat::mistral_v2v3: return "mistral_v2v3";
  }
  return "?";
}

ChatFormat chat_format_from_name(std::string_view name, const Tokenizer* tokenizer) {
  if (name == "chatml") return ChatFormat::chatml;
  if (name == "llama3") return ChatFormat::llama3;
  if (name == "mistral" || name == "mistral_v1") return ChatFormat::mistral_v1;
  if (name == "mistral_v2v3") return ChatFormat::mistral_v2v3;
  if (name == "tokenizer_default" || name == "jinja") {
    if (tokenizer && tokenizer->chat_template().empty())
      fail<ConfigError>("chat_template {}: the tokenizer ({}) has no chat_template in tokenizer_config.json; "
                        "choose a built-in format: {}",
                        name, tokenizer->label(), chat_format_choices());
    fail<ConfigError>("chat_template {}: the tokenizer's chat template is Jinja, which difftx cannot run "
                      "(no Jinja engine in Debian 12); choose the built-in format it corresponds to: {}",
                      name, chat_format_choices());
  }
  fail<ConfigError>("chat_template \"{}\" is not a built-in format (built-in: {})", name, chat_format_choices());
}

std::optional<ChatFormat> chat_format_guess(std::string_view jinja) {
  if (jinja.find("<|im_start|>") != std::string_view::npos) return ChatFormat::chatml;
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) return ChatFormat::llama3;
  if (jinja.find("[INST]") != std::string_view::npos)  // v1 puts a space before [/INST], v2/v3 do not
    return jinja.find(" [/INST]") != std::string_view::npos ? ChatFormat::mistral_v1 : ChatFormat::mistral_v2v3;
  return std::nullopt;
}

std::string chat_render(ChatFormat format, std::span<const ChatMessage> messages, std::string_view bos,
                        std::string_view eos, bool add_generation_prompt) {
  std::string out;
  switch (format) {
    case ChatFormat::chatml:
      for (const ChatMessage& m : messages) {
        out += "<|im_start|>";
        out += m.role;
        out += "\n";
        out += m.content;
        out += "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case ChatFormat::llama3:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out += bos;
        out += "<|start_header_id|>";
        out += messages[i].role;
        out += "<|end_header_id|>\n\n";
        out += trim(messages[i].content);
        out += "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::mistral_v1:
    case ChatFormat::mistral_v2v3: {
      check_mistral(messages, format);
      const bool v1 = format == ChatFormat::mistral_v1;
      out += bos;
      for (const ChatMessage& m : messages) {
        if (m.role == "user") {
          out += v1 ? " [INST] " : "[INST] ";
          out += m.content;
          out += v1 ? " [/INST]" : "[/INST]";
        } else {
          out += " ";
          out += m.content;
          out += eos;
        }
      }
      return out;
    }
  }
  return out;
}

std::string chat_render(ChatFormat format, std::span<const ChatMessage> messages, const Tokenizer& tokenizer,
                        bool add_generation_prompt) {
  const bool needs_bos = format != ChatFormat::chatml && !messages.empty();
  const bool needs_eos = format == ChatFormat::mistral_v1 || format == ChatFormat::mistral_v2v3;
  if (needs_bos && tokenizer.bos_token().empty())
    fail<ConfigError>("chat format {} needs a bos_token, and {} has none in tokenizer_config.json or "
                      "special_tokens_map.json",
                      chat_format_name(format), tokenizer.label());
  if (needs_eos && tokenizer.eos_token().empty())
    fail<ConfigError>("chat format {} needs an eos_token, and {} has none in tokenizer_config.json or "
                      "special_tokens_map.json",
                      chat_format_name(format), tokenizer.label());
  return chat_render(format, messages, tokenizer.bos_token(), tokenizer.eos_token(), add_generation_prompt);
}

}  // namespace difftx
