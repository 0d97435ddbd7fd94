#include "config/model_keys.h"

#include <set>

#include "common/error.h"
#include "config/local_dir.h"

namespace difftx {

ModelKeys model_keys_read(const AxolotlYaml& y) {
  const std::string label = y.path.string();
  ModelKeys k;
  auto base = y.string("base_model");
  if (!base) fail<ConfigError>("{}: required key \"base_model\" is missing", label);
  k.base_model = *base;
  k.tokenizer_config = y.string("tokenizer_config").value_or("");
  YAML::Node node = y.root["special_tokens"];
  if (!node || node.IsNull()) return k;
  if (!node.IsMap())
    fail<ConfigError>("{}: key \"special_tokens\" must be a mapping such as {{pad_token: \"<pad>\"}}", label);
  static const std::set<std::string> known = {"bos_token", "eos_token", "pad_token", "unk_token",
                                              "sep_token", "cls_token", "mask_token"};
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (!known.count(key))
      fail<ConfigError>("{}: special_tokens.{} is not a special token name (expected one of bos_token, eos_token, "
                        "pad_token, unk_token, sep_token, cls_token, mask_token)", label, key);
    if (!kv.second.IsScalar()) fail<ConfigError>("{}: special_tokens.{} must be a token string", label, key);
    k.special_tokens.emplace_back(key, kv.second.Scalar());
  }
  return k;
}

ModelKeyDirs model_keys_resolve(const ModelKeys& k, const std::filesystem::path& yaml_path) {
  ModelKeyDirs d;
  d.model_dir = resolve_local_dir("base_model", k.base_model, yaml_path);
  d.tokenizer_dir = k.tokenizer_config.empty() ? d.model_dir
                                               : resolve_local_dir("tokenizer_config", k.tokenizer_config, yaml_path);
  return d;
}

}  // namespace difftx
