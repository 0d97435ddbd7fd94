#include "model/model_info.h"

#include <fmt/format.h>

#include <set>

#include "common/error.h"
#include "io/weight_files.h"
#include "model/attention/layout.h"
#include "model/model.h"
#include "model/model_dir.h"

namespace difftx {

ModelInfo model_info(const std::filesystem::path& dir) {
  const ModelDir model_dir(dir);
  ModelInfo info;
  info.dir = dir;
  info.config = model_dir.config();
  const WeightFiles& checkpoint = model_dir.weight_files();
  std::set<std::string> files;
  for (const auto& name : checkpoint.names()) {
    const auto* e = checkpoint.find(name);
    files.insert(e->file->path().filename().string());
    info.dtypes[std::string(dtype_name(e->info->dtype))] += 1;
    info.tensor_count += 1;
    info.parameter_count += e->info->numel();
    info.bytes += e->info->end - e->info->begin;
    info.tensors.push_back({name, std::string(dtype_name(e->info->dtype)), e->info->shape_string(), e->info->shape});
  }
  info.files.assign(files.begin(), files.end());
  ParamTable table = llama_param_table(info.config);
  info.expected_parameter_count = table.parameter_count();
  for (const auto& p : table.params()) {
    const auto* e = checkpoint.find(p.name);
    if (e == nullptr) {
      info.missing.push_back(p.name);
    } else if (!dtype_is_loadable(e->info->dtype)) {
      info.wrong_shape.push_back(fmt::format("{}: tensor \"{}\" has dtype {}, which difftx does not load (F32, BF16, F16)",
                                             e->file->path().filename().string(), p.name, dtype_name(e->info->dtype)));
    } else if (e->info->shape != p.shape) {
      info.wrong_shape.push_back(fmt::format("{}: tensor \"{}\" has shape {} but config.json needs [{}]",
                                             e->file->path().filename().string(), p.name, e->info->shape_string(),
                                             fmt::join(p.shape, ", ")));
    }
  }
  for (const auto& name : checkpoint.names())
    if (table.find(name) == nullptr) info.unused.push_back(name);
  return info;
}

namespace {

std::string rope_summary(const ModelConfig& c) {
  const auto& r = c.rope_scaling;
  std::string s = fmt::format("theta {}", c.rope_theta);
  switch (r.type) {
    case RopeType::none: break;
    case RopeType::linear:
    case RopeType::dynamic: s += fmt::format(", {} x{}", rope_type_name(r.type), r.factor); break;
    case RopeType::llama3:
      s += fmt::format(", llama3 x{} (low {}, high {}, original {})", r.factor, r.low_freq_factor, r.high_freq_factor,
                       r.original_max_position_embeddings);
      break;
    case RopeType::yarn:
      s += fmt::format(", yarn x{} (original {}, beta {}/{})", r.factor, r.original_max_position_embeddings,
                       r.beta_fast, r.beta_slow);
      break;
  }
  return s;
}

}  // namespace

ordered_json model_info_json(const ModelInfo& info) {
  const ModelConfig& c = info.config;
  ordered_json j;
  j["dir"] = info.dir.string();
  j["model_type"] = c.model_type;
  j["architectures"] = c.raw.value("architectures", ordered_json::array());
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_type"] = std::string(rope_type_name(c.rope_scaling.type));
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.qkv_bias();
  j["mlp_bias"] = c.mlp_bias;
  j["qk_norm"] = c.qk_norm();
  j["sliding_window"] = c.sliding_window;
  j["layout"] = std::string(attention_layout_name(c.layout));
  j["base_model_type"] = std::string(model_family_name(c.family));
  layout_module(c).describe(c, j);
  j["config_dtype"] = c.dtype ? ordered_json(std::string(dtype_torch_name(*c.dtype))) : ordered_json(nullptr);
  j["parameters"] = info.parameter_count;
  j["expected_parameters"] = info.expected_parameter_count;
  j["tensor_count"] = info.tensor_count;
  j["bytes"] = info.bytes;
  j["dtypes"] = info.dtypes;
  j["files"] = info.files;
  j["sharded"] = info.files.size() > 1;
  j["missing"] = info.missing;
  j["wrong_shape"] = info.wrong_shape;
  j["unused"] = info.unused;
  j["valid"] = info.missing.empty() && info.wrong_shape.empty();
  ordered_json tensors = ordered_json::array();
  for (const auto& t : info.tensors) tensors.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.dims}});
  j["tensors"] = tensors;
  return j;
}

std::string model_info_text(const ModelInfo& info, bool list_tensors) {
  const ModelConfig& c = info.config;
  std::string dtypes;
  for (const auto& [name, count] : info.dtypes) dtypes += fmt::format("{}{} ({} tensors)", dtypes.empty() ? "" : ", ", name, count);
  std::string s;
  s += fmt::format("model        {}\n", info.dir.string());
  s += fmt::format("model_type   {}\n", c.model_type);
  s += fmt::format("shape        {} layers, hidden {}, intermediate {}, vocab {}\n", c.num_hidden_layers, c.hidden_size,
                   c.intermediate_size, c.vocab_size);
  s += fmt::format("attention    {} heads, {} kv heads (group {}), head_dim {}{}{}{}\n", c.num_attention_heads,
                   c.num_key_value_heads, c.num_attention_heads / c.num_key_value_heads, c.head_dim,
                   c.qkv_bias() ? ", qkv bias" : "", c.qk_norm() ? ", q/k norm" : "",
                   c.sliding_window > 0 ? fmt::format(", sliding window {}", c.sliding_window) : "");
  if (const std::string layout = layout_module(c).summary(c); !layout.empty())
    s += fmt::format("differential {}\n", layout);
  s += fmt::format("rope         {}\n", rope_summary(c));
  s += fmt::format("context      {} positions, rms_norm_eps {}\n", c.max_position_embeddings, c.rms_norm_eps);
  s += fmt::format("embeddings   {}\n", c.tie_word_embeddings ? "tied (lm_head = embed_tokens)" : "untied");
  s += fmt::format("parameters   {} ({:.2f} M)\n", info.parameter_count, static_cast<double>(info.parameter_count) / 1e6);
  s += fmt::format("storage      {} tensors, {}, {:.1f} MB\n", info.tensor_count, dtypes, static_cast<double>(info.bytes) / 1e6);
  if (info.files.size() > 1) {
    s += fmt::format("files        {} shards ({} ... {}) + {}\n", info.files.size(), info.files.front(),
                     info.files.back(), kWeightsIndexFile);
  } else {
    s += fmt::format("files        {}\n", fmt::join(info.files, ", "));
  }
  if (info.missing.empty() && info.wrong_shape.empty()) {
    s += "check        ok: every tensor the config needs is present with the right shape\n";
  } else {
    s += fmt::format("check        FAILED: {} missing, {} with the wrong shape or dtype\n", info.missing.size(),
                     info.wrong_shape.size());
    for (const auto& m : info.missing) s += fmt::format("  missing      {}\n", m);
    for (const auto& w : info.wrong_shape) s += fmt::format("  wrong        {}\n", w);
  }
  if (!info.unused.empty()) s += fmt::format("unused       {} tensor(s), e.g. {}\n", info.unused.size(), info.unused.front());
  if (list_tensors)
    for (const auto& t : info.tensors) s += fmt::format("  {:<56} {:<5} {}\n", t.name, t.dtype, t.shape);
  return s;
}

}  // namespace difftx
