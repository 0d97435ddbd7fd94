#include "io/model_config.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include "common/error.h"

namespace difftx {

namespace {

// Typed reads of optional keys: absent or null -> nullopt; present with the wrong type -> ConfigError.
class Fields {
 public:
  Fields(const ordered_json& object, std::string label) : object_(object), label_(std::move(label)) {}

  const ordered_json* get(const char* key) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::optional<int64_t> integer(const char* key) const {
    const ordered_json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) wrong(key, "an integer", *v);
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      fail<ConfigError>("{}: key \"{}\" = {} is out of range", label_, key, v->dump());
    return v->get<int64_t>();
  }
  std::optional<double> number(const char* key) const {
    const ordered_json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) wrong(key, "a number", *v);
    return v->get<double>();
  }
  std::optional<bool> boolean(const char* key) const {
    const ordered_json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) wrong(key, "a boolean", *v);
    return v->get<bool>();
  }
  std::optional<std::string> string(const char* key) const {
    const ordered_json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) wrong(key, "a string", *v);
    return v->get<std::string>();
  }
  int64_t required_integer(const char* key) const {
    auto v = integer(key);
    if (!v) fail<ConfigError>("{}: required key \"{}\" (an integer) is missing", label_, key);
    return *v;
  }
  [[noreturn]] void wrong(const char* key, const char* expected, const ordered_json& v) const {
    fail<ConfigError>("{}: key \"{}\" must be {}, got {} ({})", label_, key, expected, json_type_name(v), v.dump());
  }
  const std::string& label() const { return label_; }

 private:
  const ordered_json& object_;
  std::string label_;
};

struct FamilyDefaults {
  int64_t max_position_embeddings;
  std::optional<int64_t> head_dim;
  std::optional<int64_t> sliding_window;
};

FamilyDefaults family_defaults(ModelFamily f) {
  switch (f) {
    case ModelFamily::llama: return {2048, std::nullopt, std::nullopt};
    case ModelFamily::mistral: return {4096 * 32, std::nullopt, 4096};
    case ModelFamily::qwen2: return {32768, std::nullopt, std::nullopt};
    case ModelFamily::qwen3: return {32768, 128, std::nullopt};
  }
  return {2048, std::nullopt, std::nullopt};
}

void require_positive(const std::string& label, const char* key, double value) {
  if (!(value > 0) || !std::isfinite(value))
    fail<ConfigError>("{}: key \"{}\" must be positive, got {}", label, key, value);
}

RopeType parse_rope_type(const std::string& label, const std::string& where, const std::string& name) {
  if (name == "default") return RopeType::none;
  if (name == "linear") return RopeType::linear;
  if (name == "dynamic") return RopeType::dynamic;
  if (name == "llama3") return RopeType::llama3;
  if (name == "yarn") return RopeType::yarn;
  fail<ConfigError>("{}: {} type \"{}\" is not supported (supported: default, linear, dynamic, llama3, yarn)", label,
                    where, name);
}

// Reads the scaling parameters of one rope_scaling / rope_parameters object.
RopeScaling parse_rope_object(const ordered_json& object, const std::string& label, const std::string& where,
                              int64_t max_position_embeddings) {
  if (!object.is_object())
    fail<ConfigError>("{}: key \"{}\" must be an object or null, got {}", label, where, json_type_name(object));
  Fields f(object, label + " [" + where + "]");
  auto type_name = f.string("rope_type");
  auto legacy = f.string("type");
  if (type_name && legacy && *type_name != *legacy)
    fail<ConfigError>("{}: {} has rope_type \"{}\" and type \"{}\"; they must agree", label, where, *type_name, *legacy);
  RopeScaling r;
  r.type = parse_rope_type(label, where, type_name.value_or(legacy.value_or("default")));
  if (auto p = f.number("partial_rotary_factor"); p && *p != 1.0)
    fail<ConfigError>("{}: {}.partial_rotary_factor {} is not supported (only 1.0)", label, where, *p);

  auto need = [&](const char* key) {
    auto v = f.number(key);
    if (!v)
      fail<ConfigError>("{}: {} of type {} needs key \"{}\"", label, where, rope_type_name(r.type), key);
    return *v;
  };
  switch (r.type) {
    case RopeType::none:
      break;
    case RopeType::linear:
    case RopeType::dynamic:
      r.factor = need("factor");
      break;
    case RopeType::llama3:
      r.factor = need("factor");
      r.low_freq_factor = need("low_freq_factor");
      r.high_freq_factor = need("high_freq_factor");
      r.original_max_position_embeddings = f.integer("original_max_position_embeddings").value_or(0);
      if (r.original_max_position_embeddings <= 0)
        fail<ConfigError>("{}: {} of type llama3 needs a positive integer \"original_max_position_embeddings\"", label,
                          where);
      if (r.high_freq_factor == r.low_freq_factor)
        fail<ConfigError>("{}: {}: high_freq_factor must differ from low_freq_factor", label, where);
      break;
    case RopeType::yarn: {
      r.original_max_position_embeddings =
          f.integer("original_max_position_embeddings").value_or(max_position_embeddings);
      if (r.original_max_position_embeddings <= 0)
        fail<ConfigError>("{}: {}.original_max_position_embeddings must be positive", label, where);
      auto factor = f.number("factor");
      r.factor = factor ? *factor
                        : static_cast<double>(max_position_embeddings) /
                              static_cast<double>(r.original_max_position_embeddings);
      if (auto v = f.number("beta_fast"); v && *v != 0) r.beta_fast = *v;
      if (auto v = f.number("beta_slow"); v && *v != 0) r.beta_slow = *v;
      r.attention_factor = f.number("attention_factor");
      r.mscale = f.number("mscale");
      r.mscale_all_dim = f.number("mscale_all_dim");
      r.truncate = f.boolean("truncate").value_or(true);
      break;
    }
  }
  if (r.type != RopeType::none) require_positive(label, (where + ".factor").c_str(), r.factor);
  return r;
}

}  // namespace

std::string_view rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::none: return "default";
    case RopeType::linear: return "linear";
    case RopeType::dynamic: return "dynamic";
    case RopeType::llama3: return "llama3";
    case RopeType::yarn: return "yarn";
  }
  return "?";
}

std::string_view model_family_name(ModelFamily f) {
  switch (f) {
    case ModelFamily::llama: return "llama";
    case ModelFamily::mistral: return "mistral";
    case ModelFamily::qwen2: return "qwen2";
    case ModelFamily::qwen3: return "qwen3";
  }
  return "?";
}

std::string_view attention_layout_name(AttentionLayout l) {
  switch (l) {
    case AttentionLayout::standard: return "standard";
    case AttentionLayout::llama_differential: return "llama-differential";
    case AttentionLayout::diffllama: return "diffllama";
    case AttentionLayout::diff_v1: return "diff-v1";
    case AttentionLayout::diff_v2: return "diff-v2";
  }
  return "?";
}

void ModelConfig::set_dtype(DType t) {
  dtype = t;
  // Every dtype key the config has (transformers 5 writes "dtype", 4 "torch_dtype"; some files hold
  // both), so that none is left naming the old one; "torch_dtype" when it has neither.
  bool any = false;
  for (const char* key : {"torch_dtype", "dtype"})
    if (raw.contains(key)) {
      raw[key] = std::string(dtype_torch_name(t));
      any = true;
    }
  if (!any) raw["torch_dtype"] = std::string(dtype_torch_name(t));
}

ModelConfig model_config_parse(const ordered_json& json, const std::string& label) {
  if (!json.is_object()) fail<ConfigError>("{}: must be a JSON object, got {}", label, json_type_name(json));
  Fields f(json, label);
  ModelConfig c;
  c.raw = json;

  auto model_type = f.string("model_type");
  if (!model_type) fail<ConfigError>("{}: required key \"model_type\" (a string) is missing", label);
  c.model_type = *model_type;
  std::string family_name = c.model_type;
  for (AttentionLayout l : kDifferentialLayouts)
    if (c.model_type == attention_layout_name(l)) {
      c.layout = l;
      family_name = f.string("base_model_type").value_or("llama");
    }
  if (family_name == "llama") c.family = ModelFamily::llama;
  else if (family_name == "mistral") c.family = ModelFamily::mistral;
  else if (family_name == "qwen2") c.family = ModelFamily::qwen2;
  else if (family_name == "qwen3") c.family = ModelFamily::qwen3;
  else if (c.layout == AttentionLayout::standard)
    fail<ConfigError>(
        "{}: model_type \"{}\" is not supported (supported: llama, mistral, qwen2, qwen3, llama-differential, "
        "diffllama, diff-v1, diff-v2)",
        label, c.model_type);
  else
    fail<ConfigError>("{}: base_model_type \"{}\" is not supported (supported: llama, mistral, qwen2, qwen3)", label,
                      family_name);
  FamilyDefaults defaults = family_defaults(c.family);

  c.hidden_size = f.required_integer("hidden_size");
  c.intermediate_size = f.required_integer("intermediate_size");
  c.num_hidden_layers = f.required_integer("num_hidden_layers");
  c.num_attention_heads = f.required_integer("num_attention_heads");
  c.vocab_size = f.required_integer("vocab_size");
  c.num_key_value_heads = f.integer("num_key_value_heads").value_or(c.num_attention_heads);
  // Upper bounds far above any published model (Llama 3.1 405B: 126 layers, hidden 16384,
  // intermediate 53248, 128 heads, vocab 128256), so that a hostile config cannot make difftx build
  // huge tables or allocate without bound before the size check.
  struct Bound {
    const char* key;
    int64_t value, max;
  };
  for (const Bound& b : {Bound{"hidden_size", c.hidden_size, 1 << 17}, Bound{"intermediate_size", c.intermediate_size, 1 << 20},
                         Bound{"num_hidden_layers", c.num_hidden_layers, 4096},
                         Bound{"num_attention_heads", c.num_attention_heads, 8192},
                         Bound{"num_key_value_heads", c.num_key_value_heads, 8192},
                         Bound{"vocab_size", c.vocab_size, 1 << 24}}) {
    if (b.value <= 0) fail<ConfigError>("{}: key \"{}\" must be a positive integer, got {}", label, b.key, b.value);
    if (b.value > b.max)
      fail<ConfigError>("{}: key \"{}\" = {} is implausibly large (difftx accepts at most {})", label, b.key, b.value,
                        b.max);
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail<ConfigError>("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", label,
                      c.num_attention_heads, c.num_key_value_heads);
  if (auto hd = f.integer("head_dim")) {
    c.head_dim = *hd;
  } else if (defaults.head_dim) {
    c.head_dim = *defaults.head_dim;
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      fail<ConfigError>("{}: hidden_size ({}) is not a multiple of num_attention_heads ({}) and head_dim is not given",
                        label, c.hidden_size, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > 65536)
    fail<ConfigError>("{}: head_dim must be a positive even integer (RoPE rotates pairs) of at most 65536, got {}",
                      label, c.head_dim);

  c.max_position_embeddings = f.integer("max_position_embeddings").value_or(defaults.max_position_embeddings);
  if (c.max_position_embeddings <= 0)
    fail<ConfigError>("{}: key \"max_position_embeddings\" must be positive, got {}", label, c.max_position_embeddings);
  c.rms_norm_eps = f.number("rms_norm_eps").value_or(1e-6);
  require_positive(label, "rms_norm_eps", c.rms_norm_eps);
  c.initializer_range = f.number("initializer_range").value_or(0.02);
  if (!(c.initializer_range >= 0) || !std::isfinite(c.initializer_range))
    fail<ConfigError>("{}: key \"initializer_range\" must be >= 0, got {}", label, c.initializer_range);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(false);
  if (c.family == ModelFamily::llama || c.family == ModelFamily::qwen3)
    c.attention_bias = f.boolean("attention_bias").value_or(false);
  if (c.family == ModelFamily::llama) c.mlp_bias = f.boolean("mlp_bias").value_or(false);

  auto act = f.string("hidden_act").value_or("silu");
  if (act != "silu")
    fail<ConfigError>("{}: hidden_act \"{}\" is not supported (supported: silu)", label, act);

  // Sliding-window attention.
  if (c.family == ModelFamily::mistral) {
    bool present = json.contains("sliding_window");
    auto window = f.integer("sliding_window");
    c.sliding_window = window ? *window : (present ? 0 : defaults.sliding_window.value_or(0));
    if (c.sliding_window < 0) fail<ConfigError>("{}: key \"sliding_window\" must be >= 0 or null", label);
  } else if (c.family == ModelFamily::qwen2 || c.family == ModelFamily::qwen3) {
    if (f.boolean("use_sliding_window").value_or(false))
      fail<ConfigError>("{}: use_sliding_window true is not supported for {} (only false)", label, c.model_type);
  }

  // RoPE: transformers v5 writes rope_parameters {rope_type, rope_theta, ...}; v4 writes rope_theta
  // at the top level and rope_scaling {rope_type | type, ...} or null.
  double theta_top = f.number("rope_theta").value_or(10000.0);
  if (const ordered_json* params = f.get("rope_parameters")) {
    c.rope_scaling = parse_rope_object(*params, label, "rope_parameters", c.max_position_embeddings);
    Fields pf(*params, label + " [rope_parameters]");
    c.rope_theta = pf.number("rope_theta").value_or(theta_top);
    if (f.get("rope_scaling") != nullptr)
      spdlog::warn("{}: both rope_parameters and rope_scaling are present; using rope_parameters", label);
  } else {
    c.rope_theta = theta_top;
    if (const ordered_json* scaling = f.get("rope_scaling"))
      c.rope_scaling = parse_rope_object(*scaling, label, "rope_scaling", c.max_position_embeddings);
  }
  require_positive(label, "rope_theta", c.rope_theta);

  if (c.layout == AttentionLayout::llama_differential) {
    c.split_heads = f.boolean("split_heads").value_or(false);
    c.sublayer_norm = f.boolean("sublayer_norm").value_or(true);
    c.zero_init = f.boolean("zero_init").value_or(false);
    c.mirror_weights = f.boolean("mirror_weights").value_or(false);
  }
  if (c.is_differential()) {
    c.lambda_std_dev = f.number("lambda_std_dev").value_or(0.1);
    // Split mode and diff-v1 pair both the query and the key heads; diffllama pairs the query heads only.
    const bool pairs_kv = c.split_heads || c.layout == AttentionLayout::diff_v1;
    const std::string what = c.split_heads ? "split_heads" : std::string(attention_layout_name(c.layout));
    if ((pairs_kv || c.layout == AttentionLayout::diffllama) && c.num_attention_heads % 2 != 0)
      fail<ConfigError>("{}: {} needs an even num_attention_heads, got {}", label, what, c.num_attention_heads);
    if (pairs_kv && c.num_key_value_heads % 2 != 0)
      fail<ConfigError>("{}: {} needs an even num_key_value_heads, got {}", label, what, c.num_key_value_heads);
  }

  // A negative id means none (the first Llama conversions wrote "pad_token_id": -1); config.json
  // keeps it as it was.
  const auto id_or_none = [&](const char* key) {
    std::optional<int64_t> id = f.integer(key);
    return id && *id < 0 ? std::nullopt : id;
  };
  c.bos_token_id = id_or_none("bos_token_id");
  c.pad_token_id = id_or_none("pad_token_id");
  for (auto [key, id] : {std::pair{"bos_token_id", c.bos_token_id}, {"pad_token_id", c.pad_token_id}})
    if (id && *id >= c.vocab_size)
      fail<ConfigError>("{}: key \"{}\" = {} is outside the vocabulary [0, {})", label, key, *id, c.vocab_size);
  if (const ordered_json* eos = f.get("eos_token_id")) {
    if (eos->is_number_integer()) {
      c.eos_token_ids.push_back(eos->get<int64_t>());
    } else if (eos->is_array()) {
      for (const auto& id : *eos) {
        if (!id.is_number_integer()) f.wrong("eos_token_id", "an integer or a list of integers", *eos);
        c.eos_token_ids.push_back(id.get<int64_t>());
      }
    } else {
      f.wrong("eos_token_id", "an integer or a list of integers", *eos);
    }
  }

  std::erase_if(c.eos_token_ids, [](int64_t id) { return id < 0; });  // none, as above
  for (int64_t id : c.eos_token_ids)
    if (id >= c.vocab_size)
      fail<ConfigError>("{}: key \"eos_token_id\" holds {}, outside the vocabulary [0, {})", label, id, c.vocab_size);

  for (const char* key : {"torch_dtype", "dtype"}) {
    if (auto name = f.string(key)) {
      c.dtype = dtype_from_torch_name(*name);
      if (!c.dtype) spdlog::warn("{}: {} \"{}\" is not a float type difftx writes; ignoring it", label, key, *name);
      break;
    }
  }
  return c;
}

ModelConfig model_config_load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail<FileError>("{}: missing (file not found)", path.string());
  return model_config_parse(json_read_file(path), path.string());
}

void model_config_save(const std::filesystem::path& path, const ModelConfig& config) {
  json_write_file(path, config.raw);
}

}  // namespace difftx
