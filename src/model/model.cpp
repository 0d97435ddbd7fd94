#include "model/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <new>
#include <stdexcept>

#include "common/error.h"
#include "io/dtype.h"
#include "model/attention/layout.h"

namespace difftx {

ParamTable llama_param_table(const ModelConfig& c) {
  const int64_t D = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = c.head_dim;
  ParamTable t;
  t.add("model.embed_tokens.weight", {V, D}, ParamInit::normal);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    t.add(p + "input_layernorm.weight", {D}, ParamInit::ones);
    auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
      t.add(p + name + ".weight", {out, in}, ParamInit::normal);
      if (bias) t.add(p + name + ".bias", {out}, ParamInit::zeros);
    };
    linear("self_attn.q_proj", c.q_proj_rows(), D, c.qkv_bias());
    linear("self_attn.k_proj", c.k_proj_rows(), D, c.qkv_bias());
    linear("self_attn.v_proj", c.kv_dim(), D, c.qkv_bias());
    linear("self_attn.o_proj", D, c.q_dim(), c.o_bias());
    if (c.qk_norm()) {
      t.add(p + "self_attn.q_norm.weight", {d}, ParamInit::ones);
      t.add(p + "self_attn.k_norm.weight", {d}, ParamInit::ones);
    }
    layout_module(c).add_layer_params(t, c, p, l);  // lambda_init, lambda vectors, subln
    t.add(p + "post_attention_layernorm.weight", {D}, ParamInit::ones);
    linear("mlp.gate_proj", I, D, c.mlp_bias);
    linear("mlp.up_proj", I, D, c.mlp_bias);
    linear("mlp.down_proj", D, I, c.mlp_bias);
  }
  t.add("model.norm.weight", {D}, ParamInit::ones);
  if (!c.tie_word_embeddings) t.add("lm_head.weight", {V, D}, ParamInit::normal);
  return t;
}

Model::Model(ModelConfig config, bool matrices_in_bf16)
    : config_(std::move(config)), table_(llama_param_table(config_)), backend_(cpu_backend()) {
  try {
    if (matrices_in_bf16) {
      uint64_t floats = 0, halves = 0;
      compact_offsets_ = bf16_layout(floats, halves);
      weights_bf16_.assign(halves, 0);
      bf16_count_ = weights_bf16_.size();
      weights_.assign(floats, 0.0f);
    } else {
      weights_.assign(table_.buffer_floats(), 0.0f);
    }
    float_count_ = weights_.size();
  } catch (const std::bad_alloc&) {
    fail<ConfigError>("{} parameters ({:.2f} GB as float32) do not fit in memory", table_.parameter_count(),
                      static_cast<double>(table_.buffer_floats()) * 4e-9);
  } catch (const std::length_error&) {
    fail<ConfigError>("{} parameters do not fit in memory", table_.parameter_count());
  }
  bind();
}

namespace {

// The parameters kept in bfloat16 by keep_matrices_in_bf16(): the embedding, the projections and
// lm_head (ParamKind::matrix).
bool is_matrix(const ParamSpec& p) { return p.kind == ParamKind::matrix; }

constexpr uint64_t kNoCopy = ~uint64_t{0};  // bf16_copy_offsets_ of a parameter without a bf16 copy

constexpr uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

}  // namespace

uint64_t Model::float_offset(const ParamSpec& p) const {
  if (!matrices_in_bf16()) return p.offset;
  if (is_matrix(p)) throw std::logic_error(fmt::format("{}: kept in bf16, there is no float32 copy", p.name));
  return compact_offsets_[static_cast<size_t>(&p - table_.params().data())];
}

std::span<float> Model::weights() {
  if (matrices_in_bf16()) throw std::logic_error("Model::weights: the matrices are kept in bf16 (inference only)");
  if (on_device()) throw std::logic_error("Model::weights: the weights are on " + backend_->name());
  return weights_;
}
std::span<const float> Model::weights() const { return const_cast<Model*>(this)->weights(); }

float* Model::param(std::string_view name) {
  if (on_device()) throw std::logic_error("Model::param: the weights are on " + backend_->name());
  return weights_.data() + float_offset(table_.at(name));
}
const float* Model::param(std::string_view name) const { return const_cast<Model*>(this)->param(name); }

std::vector<uint64_t> Model::bf16_layout(uint64_t& floats, uint64_t& halves) const {
  const std::vector<ParamSpec>& params = table_.params();
  std::vector<uint64_t> offsets(params.size());
  floats = 0;
  halves = 0;  // each parameter 64-byte aligned, as in the table
  for (size_t i = 0; i < params.size(); ++i) {
    uint64_t& end = is_matrix(params[i]) ? halves : floats;
    offsets[i] = end;
    end += round_up(params[i].numel, is_matrix(params[i]) ? 32 : 16);
  }
  return offsets;
}

void Model::read_tensor(const ParamSpec& p, float* out) const {
  if (on_device()) throw std::logic_error("Model::read_tensor: the weights are on " + backend_->name());
  if (matrices_in_bf16() && is_matrix(p)) {
    const uint16_t* src = weights_bf16_.data() + compact_offsets_[static_cast<size_t>(&p - table_.params().data())];
    for (uint64_t i = 0; i < p.numel; ++i) out[i] = bf16_to_f32(src[i]);
    return;
  }
  std::copy_n(weights_.data() + float_offset(p), p.numel, out);
}

void Model::write_tensor(const ParamSpec& p, const float* values) {
  if (on_device()) throw std::logic_error("Model::write_tensor: the weights are on " + backend_->name());
  if (matrices_in_bf16() && is_matrix(p)) {
    uint16_t* dst = bf16_param(p);
    for (uint64_t i = 0; i < p.numel; ++i) dst[i] = f32_to_bf16(values[i]);
    return;
  }
  std::copy_n(values, p.numel, weights_.data() + float_offset(p));
  if (has_bf16_weight_copies() && is_matrix(p)) {  // (p may be another table's entry of the same name)
    const size_t index = static_cast<size_t>(table_.find(p.name) - table_.params().data());
    uint16_t* copy = bf16_copies_.data() + bf16_copy_offsets_[index];
    for (uint64_t i = 0; i < p.numel; ++i) copy[i] = f32_to_bf16(values[i]);
  }
}

uint16_t* Model::bf16_param(const ParamSpec& p) {
  if (!matrices_in_bf16() || !is_matrix(p)) throw std::logic_error(p.name + ": not kept in bf16");
  return weights_bf16_.data() + compact_offsets_[static_cast<size_t>(&p - table_.params().data())];
}

void Model::keep_matrices_in_bf16() {
  if (matrices_in_bf16()) return;
  if (on_device()) throw std::logic_error("Model::keep_matrices_in_bf16: call it before place_on()");
  const std::vector<ParamSpec>& params = table_.params();
  uint64_t floats = 0, halves = 0;
  std::vector<uint64_t> offsets = bf16_layout(floats, halves);
  AlignedVector<float> compact;
  try {
    weights_bf16_.assign(halves, 0);
    compact.assign(floats, 0.0f);
  } catch (const std::bad_alloc&) {
    weights_bf16_ = {};
    fail<ConfigError>("keeping the matrices in bf16 needs {:.2f} GB more memory, which is not available",
                      static_cast<double>(halves) * 2e-9);
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const float* src = weights_.data() + params[i].offset;
    const auto n = static_cast<int64_t>(params[i].numel);
    if (!is_matrix(params[i])) {
      std::copy_n(src, n, compact.data() + offsets[i]);
      continue;
    }
    uint16_t* dst = weights_bf16_.data() + offsets[i];
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int64_t j = 0; j < n; ++j) dst[j] = f32_to_bf16(src[j]);
  }
  weights_ = std::move(compact);
  compact_offsets_ = std::move(offsets);
  float_count_ = weights_.size();
  bf16_count_ = weights_bf16_.size();
  bind();
}

void Model::keep_bf16_weight_copies() {
  if (matrices_in_bf16()) throw std::logic_error("Model::keep_bf16_weight_copies: the matrices are kept in bf16");
  if (on_device()) throw std::logic_error("Model::keep_bf16_weight_copies: the weights are on " + backend_->name());
  if (has_bf16_weight_copies()) return refresh_bf16_weight_copies();
  const std::vector<ParamSpec>& params = table_.params();
  std::vector<uint64_t> offsets(params.size(), kNoCopy);
  uint64_t halves = 0;  // each matrix 64-byte aligned
  for (size_t i = 0; i < params.size(); ++i)
    if (is_matrix(params[i])) {
      offsets[i] = halves;
      halves += round_up(params[i].numel, 32);
    }
  try {
    bf16_copies_.assign(halves, 0);
  } catch (const std::bad_alloc&) {
    fail<ConfigError>("bf16 copies of the matrices need {:.2f} GB more memory, which is not available",
                      static_cast<double>(halves) * 2e-9);
  }
  bf16_copy_offsets_ = std::move(offsets);
  refresh_bf16_weight_copies();
  bind();
}

void Model::refresh_bf16_weight_copies() {
  if (!has_bf16_weight_copies()) return;
  const std::vector<ParamSpec>& params = table_.params();
  // Pieces of at most 2^16 elements over every matrix, shared by the threads.
  struct Piece {
    const float* src;
    uint16_t* dst;
    int64_t n;
  };
  std::vector<Piece> pieces;
  for (size_t i = 0; i < params.size(); ++i) {
    if (bf16_copy_offsets_[i] == kNoCopy) continue;
    const float* src = weights_.data() + params[i].offset;
    uint16_t* dst = bf16_copies_.data() + bf16_copy_offsets_[i];
    for (uint64_t o = 0; o < params[i].numel; o += uint64_t{1} << 16)
      pieces.push_back({src + o, dst + o, static_cast<int64_t>(std::min<uint64_t>(params[i].numel - o, uint64_t{1} << 16))});
  }
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < pieces.size(); ++i) {
    const Piece& piece = pieces[i];
#pragma omp simd
    for (int64_t j = 0; j < piece.n; ++j) piece.dst[j] = f32_to_bf16(piece.src[j]);
  }
}

void Model::place_on(std::shared_ptr<Backend> backend) {
  if (on_device()) throw std::logic_error("Model::place_on: the model is already on " + backend_->name());
  if (has_lora() && !backend->host_memory())
    throw std::logic_error("Model::place_on: a LoRA adapter is attached; it runs on the CPU only");
  if (backend->host_memory()) {
    backend_ = std::move(backend);
    return;
  }
  AlignedVector<uint16_t>().swap(bf16_copies_);  // a device's products round its own weights
  bf16_copy_offsets_.clear();
  std::vector<float> lambdas;
  if (layout_module(config_).lambda_per_layer())
    for (int64_t l = 0; l < config_.num_hidden_layers; ++l) lambdas.push_back(layer_lambda(l));
  Buffer f32 = backend->alloc(weights_.size() * sizeof(float));
  Buffer bf16 = backend->alloc(weights_bf16_.size() * sizeof(uint16_t));
  backend->upload(f32.as<void>(), weights_.data(), f32.bytes());
  backend->upload(bf16.as<void>(), weights_bf16_.data(), bf16.bytes());
  backend->synchronize();
  device_weights_ = std::move(f32);
  device_weights_bf16_ = std::move(bf16);
  placed_lambda_ = std::move(lambdas);
  backend_ = std::move(backend);
  AlignedVector<float>().swap(weights_);  // frees the host copies
  AlignedVector<uint16_t>().swap(weights_bf16_);
  bind();
}

void Model::bind() {
  const float* f32 = on_device() ? device_weights_.as<const float>() : weights_.data();
  const uint16_t* bf16 = on_device() ? device_weights_bf16_.as<const uint16_t>() : weights_bf16_.data();
  if (layer_index_.empty()) {
    for (int64_t l = 0; l < config_.num_hidden_layers; ++l) layer_index_.push_back(layer_index(table_, l));
    head_index_ = {table_.find("model.embed_tokens.weight"), table_.find("model.norm.weight"),
                   table_.find(config_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight")};
  }
  auto vector_at = [&](const ParamSpec* p) -> const float* { return p == nullptr ? nullptr : f32 + float_offset(*p); };
  auto matrix_at = [&](const ParamSpec* p) -> LinearWeight {
    if (p == nullptr) return {};
    if (!matrices_in_bf16()) {
      const size_t index = static_cast<size_t>(p - table_.params().data());
      if (bf16_copies_.empty() || on_device()) return {f32 + p->offset, nullptr};
      return {f32 + p->offset, bf16_copies_.data() + bf16_copy_offsets_[index]};
    }
    return {nullptr, bf16 + compact_offsets_[static_cast<size_t>(p - table_.params().data())]};
  };
  embed_ = matrix_at(head_index_.embed);
  final_norm_ = vector_at(head_index_.final_norm);
  lm_head_ = matrix_at(head_index_.lm_head);
  layers_.clear();
  for (const LayerIndex& index : layer_index_)
    layers_.push_back(map_layer<LinearWeight, const float*>(index, matrix_at, vector_at));
}

}  // namespace difftx
