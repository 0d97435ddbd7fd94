#include "tokenizer/tokenizer_test_util.h"

#include <sstream>

#include "test_util.h"
#include "tokenizer/decoders.h"
#include "tokenizer/json_ref.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/pre_tokenizers.h"

namespace difftx::test {

std::filesystem::path tokenizer_fixture(const std::string& name) {
  return std::filesystem::path(DIFFTX_SHARED_DIR) / "fixtures" / "tokenizers" / name;
}

std::vector<std::string> read_cases(const std::filesystem::path& file) {
  const std::string text = read_text(file);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  size_t pos = 0;
  for (size_t next; (next = text.find(sep, pos)) != std::string::npos; pos = next + sep.size())
    cases.push_back(text.substr(pos, next - pos));
  if (pos != text.size()) throw std::runtime_error(file.string() + ": text after the last separator");
  return cases;
}

std::vector<std::vector<int32_t>> read_expected_ids(const std::filesystem::path& file) {
  std::vector<std::vector<int32_t>> all;
  std::istringstream lines(read_text(file));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream items(line);
    std::vector<int32_t> ids;
    for (int32_t id; items >> id;) ids.push_back(id);
    all.push_back(std::move(ids));
  }
  return all;
}

const Tokenizer& llama3() {
  static const Tokenizer t = Tokenizer::load(tokenizer_fixture("llama3"));
  return t;
}

const Tokenizer& mistral() {
  static const Tokenizer t = Tokenizer::load(tokenizer_fixture("mistral"));
  return t;
}

json tiny_tokenizer_json(const std::vector<std::string>& vocab, const std::vector<std::string>& merges) {
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  return json{{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", v},
                {"merges", merges}}}};
}

Tokenizer from_json(const json& tokenizer, const json* config) {
  return Tokenizer::from_json(tokenizer, config, nullptr, "tokenizer.json", "tokenizer_config.json");
}

std::vector<std::string> pre_tokenize(const json& pre_tokenizer, std::string_view text, bool at_start) {
  static const std::string label = "tokenizer.json";
  auto p = tok::pre_tokenizer_from_json(tok::JsonRef(pre_tokenizer, label, "pre_tokenizer"));
  struct Collect final : tok::PieceSink {
    std::vector<std::string> pieces;
    void piece(std::string_view t, bool) override { pieces.emplace_back(t); }
  } c;
  p->pre_tokenize(text, at_start, c);
  return c.pieces;
}

std::string normalize(const json& normalizer, std::string text) {
  static const std::string label = "tokenizer.json";
  tok::normalizer_from_json(tok::JsonRef(normalizer, label, "normalizer"))->normalize(text);
  return text;
}

std::vector<std::string> decode_chain(const json& decoder, std::vector<std::string> tokens) {
  static const std::string label = "tokenizer.json";
  tok::decoder_from_json(tok::JsonRef(decoder, label, "decoder"))->decode_chain(tokens);
  return tokens;
}

}  // namespace difftx::test
