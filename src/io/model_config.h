// config.json of a Hugging Face Llama-family model -> typed configuration (spec §1, §3, §4).
//
// Supported model_type: llama, mistral, qwen2, qwen3, and the differential layouts
// llama-differential (the seed's format, spec §3), diffllama (transformers' DiffLlama, spec §4),
// diff-v1 (the paper's formulation, spec §7) and diff-v2 (Microsoft's DIFF V2, spec §8), whose base family is read from "base_model_type" (default llama). Keys follow transformers' configuration
// classes; a key absent from the file takes that class's default, except the keys that fix the
// model's shape (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// vocab_size), which are required: a config without them is treated as broken rather than
// silently given a 7B shape. Every key read is kept in `raw`, in file order, and written back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/json_file.h"

namespace difftx {

enum class ModelFamily { llama, mistral, qwen2, qwen3 };

// How attention is computed (spec §1 standard; §3 llama-differential; §4 diffllama; §7 diff-v1;
// §8 diff-v2).
enum class AttentionLayout { standard, llama_differential, diffllama, diff_v1, diff_v2 };

// RoPE frequency scaling (transformers' rope_scaling / rope_parameters, "rope_type" or legacy "type").
enum class RopeType { none, linear, dynamic, llama3, yarn };

struct RopeScaling {
  RopeType type = RopeType::none;
  double factor = 1.0;                             // linear, dynamic, llama3, yarn
  double low_freq_factor = 1.0;                    // llama3
  double high_freq_factor = 4.0;                   // llama3
  int64_t original_max_position_embeddings = 0;    // llama3, yarn (yarn default: max_position_embeddings)
  double beta_fast = 32.0;                         // yarn
  double beta_slow = 1.0;                          // yarn
  std::optional<double> attention_factor;          // yarn (default from factor, mscale, mscale_all_dim)
  std::optional<double> mscale, mscale_all_dim;    // yarn
  bool truncate = true;                            // yarn: floor/ceil the correction range
};

struct ModelConfig {
  ModelFamily family = ModelFamily::llama;
  std::string model_type;            // as written in the file
  int64_t hidden_size = 0;           // D
  int64_t intermediate_size = 0;     // MLP width
  int64_t num_hidden_layers = 0;     // L
  int64_t num_attention_heads = 0;   // H
  int64_t num_key_value_heads = 0;   // KV (GQA); H % KV == 0
  int64_t head_dim = 0;              // d: config head_dim, else D / H
  int64_t vocab_size = 0;            // V
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;       // llama/qwen3: biases on q, k, v, o
  bool mlp_bias = false;             // llama: biases on gate, up, down
  int64_t sliding_window = 0;        // mistral: key j visible to query i only if i - j < window; 0 = off
  double initializer_range = 0.02;
  std::optional<int64_t> bos_token_id, pad_token_id;  // none when absent or negative
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be one id or a list
  std::optional<DType> dtype;          // torch_dtype / dtype
  ordered_json raw;                    // every key of the file, in order

  // Differential attention (spec §3, §4, §7, §8).
  AttentionLayout layout = AttentionLayout::standard;
  bool split_heads = false;      // llama-differential: "split" mode (else "double")
  bool sublayer_norm = true;     // llama-differential: subln RMSNorm (learned weight) per head
  bool zero_init = false;        // llama-differential: recorded conversion flags
  bool mirror_weights = false;
  double lambda_std_dev = 0.1;   // init of the lambda vectors (diffllama's key; the seed uses 0.1 too)

  bool qkv_bias() const { return attention_bias || family == ModelFamily::qwen2; }
  bool o_bias() const { return attention_bias && family != ModelFamily::qwen2; }
  bool qk_norm() const { return family == ModelFamily::qwen3; }
  bool is_differential() const { return layout != AttentionLayout::standard; }
  bool double_heads() const { return layout == AttentionLayout::llama_differential && !split_heads; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }     // attention output width
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }    // v_proj rows
  // q_proj rows: doubled in double mode (q1 then q2) and in diff-v2 (2H query heads).
  int64_t q_proj_rows() const { return (double_heads() || layout == AttentionLayout::diff_v2 ? 2 : 1) * q_dim(); }
  int64_t k_proj_rows() const { return (double_heads() ? 2 : 1) * kv_dim(); }
  // Width of one differential head's value (and subln): d in double mode and diff-v2, 2d otherwise.
  int64_t diff_value_width() const {
    return (double_heads() || layout == AttentionLayout::diff_v2 ? 1 : 2) * head_dim;
  }

  // Records the dtype the weights are written in, under every key the file used ("torch_dtype",
  // transformers v5's "dtype", or both), or "torch_dtype" when it had neither.
  void set_dtype(DType t);
};

// `label` (normally the file path) prefixes every error. Throws ConfigError naming the key and
// what was expected: wrong type, unknown model_type or rope type (listing the supported ones),
// hidden_act other than silu, inconsistent head counts.
ModelConfig model_config_parse(const ordered_json& json, const std::string& label);
ModelConfig model_config_load(const std::filesystem::path& path);  // FileError if absent/unreadable
void model_config_save(const std::filesystem::path& path, const ModelConfig& config);  // atomic

std::string_view rope_type_name(RopeType t);
std::string_view model_family_name(ModelFamily f);
// "standard", "llama-differential", "diffllama", "diff-v1", "diff-v2": the model_type of each layout.
std::string_view attention_layout_name(AttentionLayout l);
// The differential layouts, in the order the CLI lists them (convert's --format).
inline constexpr AttentionLayout kDifferentialLayouts[] = {AttentionLayout::llama_differential,
                                                           AttentionLayout::diffllama, AttentionLayout::diff_v1,
                                                           AttentionLayout::diff_v2};

// lambda_init(l) = 0.8 - 0.6 exp(-0.3 l) (spec §2; paper §2.1).

}  // namespace difftx
