#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <climits>

#include "common/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/decoders.h"
#include "tokenizer/json_ref.h"
#include "tokenizer/model_bpe.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/utf8.h"

namespace difftx {

using tok::JsonRef;

struct Tokenizer::Impl {
  std::string label;
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::BpeModel> model;
  tok::AddedVocabulary added;
  tok::SingleTemplate special;  // post-processor + tokenizer_config.json BOS/EOS flags
  std::unique_ptr<tok::Decoder> decoder;
  std::string bos_token, eos_token;
  std::optional<int32_t> bos_id, eos_id;
  std::string chat_template;
  bool parse_special_default = true;
  bool clean_up_spaces = false;
  int32_t vocab_size = 0;

  std::optional<int32_t> token_to_id(std::string_view token) const {
    if (auto id = added.token_to_id(token)) return id;
    return model->token_to_id(token);
  }
  const std::string* id_to_token(int32_t id) const {
    if (const tok::AddedToken* a = added.find(id)) return &a->content;
    return model->id_to_token(id);
  }
};

namespace {

// A special token in tokenizer_config.json / special_tokens_map.json: a string, or transformers'
// serialized AddedToken {"content": ..., ...}; null or absent -> nullopt.
std::optional<std::string> special_token_string(const JsonRef& obj, std::string_view key) {
  auto v = obj.find(key);
  if (!v) return std::nullopt;
  if (v->value().is_object()) return v->at("content").as_string();
  return v->as_string();
}

// What tokenizer.json's pre-tokenizer does about a leading space: the add_prefix_space of a
// ByteLevel, or whether a Metaspace prepends; nullopt when it has neither.
std::optional<bool> pre_tokenizer_prefix_space(const nlohmann::json& pre) {
  if (!pre.is_object()) return std::nullopt;
  const std::string type = pre.value("type", "");
  if (type == "ByteLevel") return pre.value("add_prefix_space", true);
  if (type == "Metaspace") {
    if (pre.contains("prepend_scheme") && pre["prepend_scheme"].is_string()) return pre["prepend_scheme"] != "never";
    return pre.value("add_prefix_space", true);
  }
  if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
    for (const auto& p : pre["pretokenizers"])
      if (auto v = pre_tokenizer_prefix_space(p)) return v;
  return std::nullopt;
}

void read_config(Tokenizer::Impl& t, const nlohmann::json& tokenizer, const nlohmann::json* config,
                 const nlohmann::json* special_map, const std::string& config_label) {
  std::optional<bool> add_bos, add_eos;
  const std::string map_label = "special_tokens_map.json";
  if (config) {
    JsonRef c(*config, config_label);
    c.expect_object();
    if (auto v = c.find("add_bos_token")) add_bos = v->as_bool();
    if (auto v = c.find("add_eos_token")) add_eos = v->as_bool();
    t.bos_token = special_token_string(c, "bos_token").value_or("");
    t.eos_token = special_token_string(c, "eos_token").value_or("");
    if (auto v = c.find("chat_template")) {
      if (v->value().is_string()) {
        t.chat_template = v->as_string();
      } else {
        // transformers also accepts [{"name": ..., "template": ...}]; "default" is the one used.
        for (size_t i = 0; i < v->array_size(); ++i) {
          JsonRef item = (*v)[i];
          if (item.at("name").as_string() == "default") t.chat_template = item.at("template").as_string();
        }
      }
    }
    t.parse_special_default = !c.get_bool("split_special_tokens", false);
    // transformers rebuilds the pre-tokenizer (or converts the slow tokenizer) for an
    // add_prefix_space that tokenizer.json does not already have; difftx reads tokenizer.json only.
    if (auto v = c.find("add_prefix_space")) {
      const bool wanted = v->as_bool();
      auto has = pre_tokenizer_prefix_space(tokenizer.contains("pre_tokenizer") ? tokenizer["pre_tokenizer"] : nullptr);
      if (!has || *has != wanted)
        v->fail(fmt::format("is {}, but tokenizer.json's pre-tokenizer {}; transformers would rebuild the "
                            "pre-tokenizer for it, which difftx does not do (set it in tokenizer.json and remove "
                            "the key)",
                            wanted, has ? fmt::format("adds a prefix space: {}", *has)
                                        : std::string("has no ByteLevel or Metaspace step")));
    }
    t.clean_up_spaces = c.get_bool("clean_up_tokenization_spaces", false);
  }
  if (special_map) {
    JsonRef m(*special_map, map_label);
    m.expect_object();
    if (t.bos_token.empty()) t.bos_token = special_token_string(m, "bos_token").value_or("");
    if (t.eos_token.empty()) t.eos_token = special_token_string(m, "eos_token").value_or("");
  }
  if (!t.bos_token.empty()) t.bos_id = t.token_to_id(t.bos_token);
  if (!t.eos_token.empty()) t.eos_id = t.token_to_id(t.eos_token);

  auto flag = [&](std::optional<bool> on, const std::string& token, std::optional<int32_t> id, std::string_view key,
                  std::vector<int32_t>& ids, bool front) {
    if (!on) return;
    if (!id) {
      if (!*on) return;  // nothing to remove
      fail<ConfigError>("{}: {} is {} but the {} \"{}\" is not a token of the tokenizer", config_label, key, *on,
                        front ? "bos_token" : "eos_token", token);
    }
    if (*on) {
      bool present = !ids.empty() && (front ? ids.front() : ids.back()) == *id;
      if (!present) ids.insert(front ? ids.begin() : ids.end(), *id);
    } else {
      if (!ids.empty() && (front ? ids.front() : ids.back()) == *id) ids.erase(front ? ids.begin() : ids.end() - 1);
    }
  };
  flag(add_bos, t.bos_token, t.bos_id, "add_bos_token", t.special.prefix, true);
  flag(add_eos, t.eos_token, t.eos_id, "add_eos_token", t.special.suffix, false);
}

}  // namespace

Tokenizer Tokenizer::from_json(const nlohmann::json& tokenizer, const nlohmann::json* config,
                               const nlohmann::json* special_tokens_map, const std::string& label,
                               const std::string& config_label) {
  auto t = std::make_shared<Impl>();
  t->label = label;
  JsonRef root(tokenizer, t->label);
  root.expect_keys({"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "model",
                    "post_processor", "decoder"});
  if (auto v = root.find("truncation"))
    v->fail("must be null: truncation is not supported (difftx never cuts a text short without being asked)");
  if (auto v = root.find("padding")) v->fail("must be null: padding is not supported");
  if (auto v = root.find("version")) v->as_string();

  auto optional_member = [&root](std::string_view key) {
    static const nlohmann::json null_value;
    auto v = root.find(key);
    return v ? *v : JsonRef(null_value, root.label(), std::string(key));
  };
  t->normalizer = tok::normalizer_from_json(optional_member("normalizer"));
  t->pre_tokenizer = tok::pre_tokenizer_from_json(optional_member("pre_tokenizer"));
  t->model = tok::BpeModel::from_json(root.at("model"));
  t->added = tok::AddedVocabulary::from_json(root.at("added_tokens"), *t->model, t->normalizer.get());
  t->special = tok::post_processor_from_json(optional_member("post_processor"));
  t->decoder = tok::decoder_from_json(optional_member("decoder"));

  t->vocab_size = t->model->id_limit();
  for (const tok::AddedToken& a : t->added.tokens()) t->vocab_size = std::max(t->vocab_size, a.id + 1);
  for (int32_t id : t->special.prefix)
    if (!t->id_to_token(id)) root.at("post_processor").fail(fmt::format("uses id {}, which is not in the vocabulary", id));
  for (int32_t id : t->special.suffix)
    if (!t->id_to_token(id)) root.at("post_processor").fail(fmt::format("uses id {}, which is not in the vocabulary", id));

  read_config(*t, tokenizer, config, special_tokens_map, config_label);
  return Tokenizer(std::move(t));
}

Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    fail<FileError>("{}: not a tokenizer directory (does not exist or is not a directory)", dir.string());
  std::filesystem::path tokenizer_path = dir / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path))
    fail<FileError>("{}: no tokenizer.json in this directory (difftx reads Hugging Face fast-tokenizer files)",
                    dir.string());
  nlohmann::json tokenizer = tok::tokenizer_json_read(tokenizer_path);
  std::optional<nlohmann::json> config, special_map;
  std::filesystem::path config_path = dir / "tokenizer_config.json";
  std::filesystem::path map_path = dir / "special_tokens_map.json";
  if (std::filesystem::exists(config_path)) config = tok::tokenizer_json_read(config_path);
  if (std::filesystem::exists(map_path)) special_map = tok::tokenizer_json_read(map_path);
  return from_json(tokenizer, config ? &*config : nullptr, special_map ? &*special_map : nullptr,
                   tokenizer_path.string(), config_path.string());
}

void Tokenizer::encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const {
  const Impl& t = *impl_;
  if (text.size() >= UINT32_MAX) fail<TextError>("text of {} bytes is too long to encode (the limit is 4 GiB)", text.size());
  if (size_t bad = tok::utf8_find_invalid(text); bad != tok::kValidUtf8)
    fail<TextError>("text is not valid UTF-8 at byte {} (0x{:02X})", bad, static_cast<unsigned char>(text[bad]));
  const bool parse_special = options.parse_special.value_or(t.parse_special_default);
  if (options.add_special_tokens) out.insert(out.end(), t.special.prefix.begin(), t.special.prefix.end());

  tok::BpeModel::CacheLease cache(*t.model);
  struct ModelSink final : tok::PieceSink {
    const tok::BpeModel* model;
    tok::BpeCache* cache;
    std::vector<int32_t>* out;
    DroppedText* dropped;
    void piece(std::string_view text, bool) override { model->tokenize(text, *out, cache, dropped); }
  } sink;
  sink.model = t.model.get();
  sink.cache = cache.get();
  sink.out = &out;
  sink.dropped = options.dropped;
  auto run_pipeline = [&](std::string_view part, bool at_start) {
    if (part.empty()) return;
    if (t.pre_tokenizer) t.pre_tokenizer->pre_tokenize(part, at_start, sink);
    else t.model->tokenize(part, out, cache.get(), options.dropped);
  };

  std::vector<tok::Segment> segments, inner;
  std::string normalized;
  t.added.split(text, false, parse_special, segments);
  const bool normalized_tokens = t.added.has_tokens(true);
  for (const tok::Segment& s : segments) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    std::string_view part = text.substr(s.begin, s.end - s.begin);
    const bool at_start = s.begin == 0;
    if (t.normalizer) {
      normalized.assign(part);
      t.normalizer->normalize(normalized);
      part = normalized;
    }
    if (!normalized_tokens) {
      run_pipeline(part, at_start);
      continue;
    }
    inner.clear();
    t.added.split(part, true, parse_special, inner);
    for (const tok::Segment& n : inner) {
      if (n.id >= 0) out.push_back(n.id);
      else run_pipeline(part.substr(n.begin, n.end - n.begin), at_start && n.begin == 0);
    }
  }
  if (options.add_special_tokens) out.insert(out.end(), t.special.suffix.begin(), t.special.suffix.end());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  encode(text, options, ids);
  return ids;
}

std::vector<std::string> Tokenizer::id_to_tokens(std::span<const int32_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* s = impl_->id_to_token(id);
    if (!s) fail<TextError>("id {} is not in the vocabulary of {} (ids 0..{})", id, impl_->label, impl_->vocab_size - 1);
    tokens.push_back(*s);
  }
  return tokens;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const tok::AddedToken* added = t.added.find(id);
    const std::string* s = added ? &added->content : t.model->id_to_token(id);
    if (!s) fail<TextError>("id {} is not in the vocabulary of {} (ids 0..{})", id, t.label, t.vocab_size - 1);
    if (options.skip_special_tokens && added && added->special) continue;
    tokens.push_back(*s);
  }
  std::string text;
  if (t.decoder) {
    t.decoder->decode_chain(tokens);
    for (const std::string& s : tokens) text += s;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {  // tokenizers joins with spaces when there is no decoder
      if (i) text += ' ';
      text += tokens[i];
    }
  }
  if (options.clean_up_tokenization_spaces) clean_up_tokenization(text);
  return text;
}

void clean_up_tokenization(std::string& text) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    std::string out;
    size_t prev = 0, pos;
    while ((pos = text.find(from, prev)) != std::string::npos) {
      out.append(text, prev, pos - prev);
      out += to;
      prev = pos + from.size();
    }
    if (prev == 0) continue;
    out.append(text, prev, std::string::npos);
    text.swap(out);
  }
}

const std::string* Tokenizer::id_to_token(int32_t id) const { return impl_->id_to_token(id); }
std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }
bool Tokenizer::is_special(int32_t id) const {
  const tok::AddedToken* a = impl_->added.find(id);
  return a && a->special;
}
int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
bool Tokenizer::config_clean_up_tokenization_spaces() const { return impl_->clean_up_spaces; }
std::span<const int32_t> Tokenizer::special_prefix() const { return impl_->special.prefix; }
std::span<const int32_t> Tokenizer::special_suffix() const { return impl_->special.suffix; }
const std::string& Tokenizer::label() const { return impl_->label; }

}  // namespace difftx
