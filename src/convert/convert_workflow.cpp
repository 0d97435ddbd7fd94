#include "convert/convert_workflow.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <set>

#include "common/error.h"
#include "config/axolotl_yaml.h"
#include "config/model_keys.h"
#include "io/atomic_file.h"
#include "io/weight_files.h"
#include "io/json_file.h"
#include "model/model_dir.h"
#include "model/diff_checks.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace difftx {

namespace {

constexpr const char* kPlugin = "axolotl_diff_transformer.plugin.DifferentialTransformerPlugin";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The input YAML with base_model pointing at the output, diff_attention on and the plugin listed
// (spec §5); keys keep their order.
std::string updated_axolotl_yaml(const AxolotlYaml& yaml, const fs::path& output_dir) {
  YAML::Node root = YAML::Clone(yaml.root);
  root["base_model"] = output_dir.string();
  root["diff_attention"] = true;
  YAML::Node plugins = root["plugins"];
  if (!plugins || plugins.IsNull()) {
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(kPlugin);
    root["plugins"] = list;
  } else {
    if (!plugins.IsSequence())
      fail<ConfigError>("{}: key \"plugins\" must be a list, got something else", yaml.path.string());
    bool present = false;
    for (const auto& p : plugins) present = present || (p.IsScalar() && p.Scalar() == kPlugin);
    if (!present) plugins.push_back(kPlugin);
  }
  return axolotl_yaml_dump(root);
}

// special_tokens checked against the vocabulary: axolotl would add a missing token and resize the
// embeddings, which a conversion must not do.
void check_special_tokens(const ModelKeys& keys, const AxolotlYaml& yaml, const Tokenizer& tokenizer,
                          const fs::path& tokenizer_dir) {
  for (const auto& [key, token] : keys.special_tokens)
    if (!tokenizer.token_to_id(token))
      fail<ConfigError>("{}: special_tokens.{} \"{}\" is not in the vocabulary of {}; adding tokens would resize the "
                        "embeddings, which convert-diff-transformer does not do", yaml.path.string(), key, token,
                        (tokenizer_dir / "tokenizer.json").string());
}

// Writes the special tokens into tokenizer_config.json (and special_tokens_map.json when present),
// as transformers' tokenizer.save_pretrained records them.
void write_special_tokens(const fs::path& dir, const std::vector<std::pair<std::string, std::string>>& tokens) {
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    std::error_code ec;
    const bool exists = fs::exists(dir / name, ec);
    if (!exists && std::string(name) == "special_tokens_map.json") continue;
    ordered_json j = exists ? json_read_file(dir / name) : ordered_json::object();
    for (const auto& [key, token] : tokens) j[key] = token;
    json_write_file(dir / name, j);
  }
}

}  // namespace

ConvertResult convert_diff_transformer(const ConvertRequest& req) {
  AxolotlYaml yaml = axolotl_yaml_load(req.config_yaml);
  const ModelKeys keys = model_keys_read(yaml);
  const ModelKeyDirs dirs = model_keys_resolve(keys, req.config_yaml);
  ConvertResult r;
  r.base_model = dirs.model_dir;
  if (req.output_dir) {
    r.output_dir = *req.output_dir;
  } else if (auto out = yaml.string("output_dir")) {
    r.output_dir = *out;
  } else {
    fail<ConfigError>("{}: no output directory: set output_dir in the config or pass --output-dir",
                      req.config_yaml.string());
  }
  if (fs::weakly_canonical(r.output_dir) == fs::weakly_canonical(r.base_model))
    fail<ConfigError>("the output directory {} is the base model's directory; choose another", r.output_dir.string());

  // Everything that can be checked without the weights, before any work.
  const ModelDir base_dir(r.base_model);  // config.json and the weights' headers, read once
  const ModelConfig& base_config = base_dir.config();
  convert_options_check(base_config, req.options);
  if (base_config.sliding_window > 0 && base_config.sliding_window < base_config.max_position_embeddings)
    spdlog::warn("{}: sliding_window {} is kept: difftx's differential attention lets a token see only the last {} "
                 "tokens, as the base model does, but the seed's Python LlamaDifferential and transformers' DiffLlama "
                 "ignore sliding_window, so in Python the converted model gives other logits past {} tokens",
                 (r.base_model / "config.json").string(), base_config.sliding_window, base_config.sliding_window,
                 base_config.sliding_window);
  const fs::path& tokenizer_dir = dirs.tokenizer_dir;
  std::optional<Tokenizer> tokenizer;
  if (req.debug || !keys.special_tokens.empty()) tokenizer = Tokenizer::load(tokenizer_dir);
  if (tokenizer) check_special_tokens(keys, yaml, *tokenizer, tokenizer_dir);
  const auto& special_tokens = keys.special_tokens;
  r.dtype = req.dtype.value_or(base_dir.stored_dtype());
  StagedDirectory out(r.output_dir, req.overwrite, {r.base_model, tokenizer_dir, req.config_yaml});

  auto t0 = std::chrono::steady_clock::now();
  Model base = base_dir.load();
  r.load_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  Model converted = convert_model(base, req.options);
  r.convert_seconds = seconds_since(t0);
  if (const std::string stuck = stuck_negative_component(converted); !stuck.empty()) spdlog::warn("{}", stuck);
  r.base_model_type = std::string(model_family_name(base.config().family));
  r.layout = std::string(attention_layout_name(req.options.layout));
  r.base_parameters = base.table().parameter_count();
  r.parameters = converted.table().parameter_count();
  if (req.debug) r.debug = convert_debug_compare(base, converted, *tokenizer, req.options);

  t0 = std::chrono::steady_clock::now();
  model_save(converted, out.staging(), r.dtype);
  copy_model_files(tokenizer_dir, out.staging());
  if (!special_tokens.empty()) write_special_tokens(out.staging(), special_tokens);
  {
    std::string text = updated_axolotl_yaml(yaml, r.output_dir);
    AtomicFile file(out.staging() / "axolotl_config.yml");
    file.write(text.data(), text.size());
    file.commit();
  }
  for (const auto& e : fs::directory_iterator(out.staging())) r.files.push_back(e.path().filename().string());
  std::sort(r.files.begin(), r.files.end());
  out.commit();
  r.save_seconds = seconds_since(t0);
  return r;
}

ordered_json convert_result_json(const ConvertResult& r) {
  ordered_json j = {{"base_model", r.base_model.string()},
          {"output_dir", r.output_dir.string()},
          {"base_model_type", r.base_model_type},
          {"layout", r.layout},
          {"dtype", std::string(dtype_name(r.dtype))},
          {"base_parameters", r.base_parameters},
          {"parameters", r.parameters},
          {"load_seconds", r.load_seconds},
          {"convert_seconds", r.convert_seconds},
          {"save_seconds", r.save_seconds},
          {"files", r.files}};
  if (r.debug) j["debug"] = debug_report_json(*r.debug);
  return j;
}

}  // namespace difftx
