// Text <-> token ids with a Hugging Face tokenizer.json, id for id with the `tokenizers` library.
//
// encode: the text is split on added tokens (added_tokens.h), each piece between them is normalized
// (normalizers.h), split on the normalized added tokens, pre-tokenized (pre_tokenizers.h) and
// given to the BPE model (model_bpe.h); with add_special_tokens the post-processor's ids are put
// around the result (post_processors.h). decode: ids -> token strings -> decoder (decoders.h).
//
// Files read by load(dir):
//   tokenizer.json            required; every type and option in it must be supported (else
//                             ConfigError naming its JSON path, e.g. "pre_tokenizer.pretokenizers[1].type")
//   tokenizer_config.json     optional: add_bos_token, add_eos_token, bos_token, eos_token,
//                             chat_template, split_special_tokens, clean_up_tokenization_spaces;
//                             add_prefix_space only when tokenizer.json's pre-tokenizer already does
//                             the same (transformers would rebuild the pre-tokenizer; difftx refuses);
//                             other keys are transformers settings that do not change the ids
//   special_tokens_map.json   optional: bos_token / eos_token when tokenizer_config.json has none
//
// A Tokenizer is a cheap, immutable, shareable handle; encode and decode may run concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/dropped_text.h"
#include "tokenizer/text_error.h"

namespace difftx {

struct EncodeOptions {
  // Put the post-processor's special tokens around the ids (e.g. BOS). tokenizer_config.json's
  // add_bos_token / add_eos_token, when set, decide whether BOS / EOS are among them: true adds the
  // token where the post-processor does not, false removes it where it does (transformers' Llama
  // tokenizers rebuild their template from these flags the same way).
  bool add_special_tokens = false;
  // Special added tokens written in the text ("<|begin_of_text|>", "<s>") become their ids. When
  // false they are tokenized as plain text (tokenizers' encode_special_tokens). Default: true,
  // unless tokenizer_config.json sets split_special_tokens.
  std::optional<bool> parse_special;
  // When set, the characters the BPE model drops (no token, no unk token, no byte fallback; the
  // ids are the tokenizers library's) are counted into it.
  DroppedText* dropped = nullptr;
};

struct DecodeOptions {
  // Leave out added tokens marked special.
  bool skip_special_tokens = false;
  // transformers' clean_up_tokenization: " ." -> ".", " n't" -> "n't", ... Lossy, so off by default
  // even when tokenizer_config.json asks for it (see Tokenizer::config_clean_up_tokenization_spaces).
  bool clean_up_tokenization_spaces = false;
};

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (+ DIR/tokenizer_config.json, DIR/special_tokens_map.json when present).
  // Throws FileError (missing or malformed file) or ConfigError (unsupported type or option, a
  // vocab/merges/added_tokens entry that contradicts another), each naming the file and JSON path.
  static Tokenizer load(const std::filesystem::path& dir);

  // The same from parsed JSON. `config` and `special_tokens_map` may be null. `label` names the
  // tokenizer.json in errors; `config_label` the tokenizer_config.json.
  static Tokenizer from_json(const nlohmann::json& tokenizer, const nlohmann::json* config,
                             const nlohmann::json* special_tokens_map, const std::string& label = "tokenizer.json",
                             const std::string& config_label = "tokenizer_config.json");

  // Encodes `text`. Throws TextError when it is not valid UTF-8 (the message gives the byte offset)
  // or is 4 GiB or longer. No other input is an error: characters the model has no token for become
  // <0xXX> byte tokens, unk_token, or nothing, as tokenizer.json says.
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const;
  // Appends the ids to `out` instead.
  void encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const;

  // Decodes ids to text. Throws TextError naming the first id that is not in the vocabulary.
  // Byte sequences that are not UTF-8 come out as U+FFFD, as the decoder defines.
  std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

  // The token strings of ids (added tokens' content, else the vocab entry). Throws TextError for an
  // unknown id.
  std::vector<std::string> id_to_tokens(std::span<const int32_t> ids) const;
  // The vocab/added-token string of one id, or nullptr.
  const std::string* id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;
  // One past the largest id (model vocab and added tokens).
  int32_t vocab_size() const;

  // BOS/EOS from tokenizer_config.json or special_tokens_map.json (empty when not set) and their ids.
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // tokenizer_config.json's chat_template (Jinja source; the "default" one when it is a list), or "".
  const std::string& chat_template() const;
  bool config_clean_up_tokenization_spaces() const;
  // The ids add_special_tokens puts before and after the text.
  std::span<const int32_t> special_prefix() const;
  std::span<const int32_t> special_suffix() const;
  // Which file this tokenizer came from (for messages).
  const std::string& label() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// transformers' clean_up_tokenization, applied in place.
void clean_up_tokenization(std::string& text);

}  // namespace difftx
