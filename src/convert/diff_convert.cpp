#include "convert/diff_convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"
#include "model/attention/layout.h"
#include "model/init.h"

namespace difftx {

void convert_options_check(const ModelConfig& base, const ConvertOptions& o) {
  if (base.is_differential())
    fail<ConfigError>("the base model is already differential (model_type \"{}\"); convert a standard model",
                      base.model_type);
  const AttentionLayoutModule& layout = layout_module(o.layout);
  if (!layout.differential()) throw std::logic_error("convert_options_check: the target layout is not differential");
  const bool halves = layout.pairs_value_heads(o);
  if (o.split_heads && o.zero_init)
    fail<ConfigError>("--split-heads and --zero-init cannot be used together: in split mode the negative component "
                      "is half of the model's own heads, so there are no new rows to zero");
  if (o.zero_init && o.mirror_weights)
    fail<ConfigError>("--zero-init and --mirror-weights cannot be used together: they set the negative rows to "
                      "zero and to a copy of the positive rows");
  if (o.plain_o_proj && !halves)
    fail<ConfigError>("--plain-o-proj applies to --split-heads and --format diffllama only: only they regroup "
                      "the value heads in pairs (i, i + H/2); the other layouts keep o_proj's column order anyway");
  if (o.split_heads && o.mirror_weights)
    fail<ConfigError>("--mirror-weights applies to double mode only: with --split-heads the negative heads are the "
                      "model's own pretrained heads (the seed ignores the flag there)");
  if (halves && base.num_attention_heads % 2 != 0)
    fail<ConfigError>("{} needs an even number of attention heads, but the model has {}",
                      layout.pairs_value_heads(ConvertOptions{}) ? fmt::format("--format {}", attention_layout_name(o.layout))
                                                                 : std::string("--split-heads"),
                      base.num_attention_heads);
  layout.check_conversion(base, o);
}

ModelConfig convert_config(const ModelConfig& base, const ConvertOptions& o) {
  ordered_json raw = base.raw;
  const bool llama_family = base.family == ModelFamily::llama;
  layout_module(o.layout).converted_config(raw, o);
  if (!llama_family) raw["base_model_type"] = std::string(model_family_name(base.family));
  return model_config_parse(raw, "converted config");
}

namespace {

uint64_t name_stream(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char ch : name) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ull;
  return h;
}

// U(-bound, bound), deterministic per (seed, name).
void uniform_fill(float* out, uint64_t n, float bound, uint64_t seed, const std::string& name) {
  std::mt19937_64 rng(seed ^ name_stream(name));
  std::uniform_real_distribution<float> u(-bound, bound);
  for (uint64_t i = 0; i < n; ++i) out[i] = u(rng);
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// q_proj rows (or its bias) of diff-v2 from the base's H heads of d rows (`row` floats each):
// head 2i = base head i; head 2i+1 = base head i again (mirror-weights, init identity), or
// U(-bound, bound) (weights) / 0 (biases).
void interleaved_q_copy(const float* src, float* dst, int64_t heads, int64_t head_dim, int64_t row, bool copy,
                        bool bias, float bound, uint64_t seed, const std::string& name) {
  const int64_t block = head_dim * row;
  std::vector<float> fresh;
  if (!copy && !bias) {
    fresh.resize(static_cast<size_t>(heads * block));
    uniform_fill(fresh.data(), fresh.size(), bound, seed, name);
  }
  for (int64_t i = 0; i < heads; ++i) {
    std::copy_n(src + i * block, block, dst + 2 * i * block);
    float* second = dst + (2 * i + 1) * block;
    if (copy) std::copy_n(src + i * block, block, second);
    else if (bias) std::fill_n(second, block, 0.0f);
    else std::copy_n(fresh.data() + i * block, block, second);
  }
}

// o_proj [D, H*d] of the base with its input column blocks paired as the regrouped value heads
// are: block 2i <- block i, block 2i+1 <- block i + H/2.
void paired_o_proj_copy(const float* src, float* dst, int64_t rows, int64_t heads, int64_t head_dim) {
  const int64_t cols = heads * head_dim;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < heads / 2; ++i) {
      std::copy_n(src + r * cols + i * head_dim, head_dim, dst + r * cols + 2 * i * head_dim);
      std::copy_n(src + r * cols + (i + heads / 2) * head_dim, head_dim, dst + r * cols + (2 * i + 1) * head_dim);
    }
}

// The name whose random stream a lambda vector is drawn from: its own, except that an identity
// conversion draws lambda_q2 / lambda_k2 as lambda_q1 / lambda_k1 (equal vectors: lambda = 0 exactly).
std::string lambda_draw_name(std::string name, const ConvertOptions& o) {
  if (o.init != ConvertInit::identity) return name;
  for (auto [second, first] : {std::pair{"lambda_q2", "lambda_q1"}, {"lambda_k2", "lambda_k1"}})
    if (ends_with(name, second)) name.replace(name.size() - std::strlen(second), std::strlen(second), first);
  return name;
}

}  // namespace

Model convert_model(const Model& base, const ConvertOptions& o) {
  convert_options_check(base.config(), o);
  Model out(convert_config(base.config(), o));
  const ModelConfig& c = out.config();
  const float bound = 1.0f / std::sqrt(static_cast<float>(c.hidden_size));
  const AttentionLayoutModule& layout = layout_module(o.layout);
  const bool paired_values = layout.pairs_value_heads(o);
  const float o_scale = layout.o_proj_scale(o);
  const bool identity = o.init == ConvertInit::identity;

  for (const ParamSpec& p : out.table().params()) {
    float* dst = out.weights().data() + p.offset;
    const ParamSpec* src_spec = base.table().find(p.name);
    if (src_spec != nullptr && src_spec->shape == p.shape && paired_values && !o.plain_o_proj &&
        ends_with(p.name, "self_attn.o_proj.weight")) {
      paired_o_proj_copy(base.weights().data() + src_spec->offset, dst, p.shape[0], c.num_attention_heads, c.head_dim);
      continue;
    }
    if (src_spec != nullptr && src_spec->shape == p.shape) {  // unchanged tensor (o_proj maybe scaled)
      const float* src = base.weights().data() + src_spec->offset;
      if (o_scale != 1.0f && ends_with(p.name, "self_attn.o_proj.weight"))
        std::transform(src, src + p.numel, dst, [o_scale](float x) { return o_scale * x; });
      else
        std::copy_n(src, p.numel, dst);
      continue;
    }
    if (src_spec != nullptr && layout.new_query_rows() == AttentionLayoutModule::NewQueryRows::interleaved) {
      const bool bias = ends_with(p.name, ".bias");  // q_proj with 2H heads: pairs of the base's heads
      interleaved_q_copy(base.weights().data() + src_spec->offset, dst, c.num_attention_heads, c.head_dim,
                         bias ? 1 : c.hidden_size, o.mirror_weights || identity, bias, bound, o.seed, p.name);
      continue;
    }
    if (src_spec != nullptr) {  // doubled q_proj / k_proj (weight or bias): positive half, then negative half
      const uint64_t half = src_spec->numel;
      const float* src = base.weights().data() + src_spec->offset;
      std::copy_n(src, half, dst);
      if (o.mirror_weights) {
        std::copy_n(src, half, dst + half);
      } else if (o.zero_init || ends_with(p.name, ".bias")) {
        std::fill_n(dst + half, half, 0.0f);
      } else {
        uniform_fill(dst + half, half, bound, o.seed, p.name);
      }
      continue;
    }
    switch (p.init) {
      case ParamInit::lambda:
        if (o.zero_init) std::fill_n(dst, p.numel, 0.0f);
        else normal_fill(dst, p.numel, static_cast<float>(c.lambda_std_dev), o.seed, name_stream(lambda_draw_name(p.name, o)));
        break;
      case ParamInit::lambda_init:
        dst[0] = o.zero_init || o.init == ConvertInit::identity ? 0.0f : static_cast<float>(lambda_init_for_layer(p.layer));
        break;
      case ParamInit::ones:  // subln
        std::fill_n(dst, p.numel, 1.0f);
        break;
      case ParamInit::normal:  // a new matrix (diff-v2's lambda_proj): PyTorch's Linear init, 0 for identity
        if (identity) std::fill_n(dst, p.numel, 0.0f);
        else uniform_fill(dst, p.numel, bound, o.seed, p.name);
        break;
      default:
        throw std::logic_error("convert_model: no rule for tensor " + p.name);
    }
  }
  return out;
}

}  // namespace difftx
