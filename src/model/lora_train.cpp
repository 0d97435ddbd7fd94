// LoRA training (model/lora.h): the trained table, its starting values, PEFT's output files, the
// dropout masks, and the model's side (Model::train_lora, the adapters' backward).
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "common/error.h"
#include "io/json_file.h"
#include "io/safetensors_write.h"
#include "kernels/backend.h"
#include "model/init.h"
#include "model/lora.h"
#include "model/model.h"

namespace difftx {

namespace fs = std::filesystem;

namespace {

// The differential parameters of a layer (trained whole with train_diff_params).
std::vector<const ParamSpec*> diff_params_of(const LayerIndex& ix) {
  std::vector<const ParamSpec*> out;
  for (const ParamSpec* p : {ix.lambda_q1, ix.lambda_k1, ix.lambda_q2, ix.lambda_k2, ix.subln, ix.lambda_proj})
    if (p != nullptr) out.push_back(p);
  return out;
}

// A modules_to_save entry, matched as PEFT matches it: the tensors (weight and bias) of every module
// whose path is the entry or ends in it ("embed_tokens", "lm_head", "q_proj": every layer's), or a
// tensor of that name ("lambda_q1": every layer's).
std::vector<const ParamSpec*> saved_module(const Model& model, const std::string& name) {
  auto matches = [&](const std::string& tensor) {  // the module's weight and bias, or the tensor itself
    for (const char* suffix : {"", ".weight", ".bias"})
      if (const std::string full = name + suffix; tensor == full || tensor.ends_with("." + full)) return true;
    return false;
  };
  std::vector<const ParamSpec*> out;
  for (const ParamSpec& p : model.table().params())
    if (p.kind != ParamKind::constant && matches(p.name)) out.push_back(&p);
  if (!out.empty()) return out;
  if ((name == "lm_head" || name == "lm_head.weight") && model.config().tie_word_embeddings)
    fail<ConfigError>("lora_modules_to_save: \"{}\": this model ties lm_head to embed_tokens "
                      "(tie_word_embeddings); save embed_tokens instead",
                      name);
  fail<ConfigError>("lora_modules_to_save: \"{}\" names no tensor of the model (e.g. embed_tokens, lm_head, or a "
                    "module path such as model.layers.0.mlp.down_proj)",
                    name);
}

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

ParamTable lora_train_table(const Model& model, const LoraTrainSpec& spec) {
  const LoraConfig& lc = spec.config;
  if (lc.r < 1) fail<ConfigError>("lora_r must be at least 1, got {}", lc.r);
  const ParamTable& t = model.table();
  const int64_t L = model.config().num_hidden_layers;
  std::vector<const ParamSpec*> whole;
  if (spec.train_diff_params)
    for (int64_t l = 0; l < L; ++l)
      for (const ParamSpec* p : diff_params_of(layer_index(t, l))) whole.push_back(p);
  for (const std::string& name : lc.modules_to_save) {
    for (const ParamSpec* p : saved_module(model, name))
      if (std::find(whole.begin(), whole.end(), p) == whole.end()) whole.push_back(p);
  }
  const bool all = lc.target_modules.size() == 1 && lc.target_modules[0] == "all-linear";
  std::set<std::string> unused(lc.target_modules.begin(), lc.target_modules.end());
  if (all) unused.clear();
  if (lc.target_modules.empty())
    fail<ConfigError>("LoRA: no target modules (set lora_target_modules, e.g. [q_proj, v_proj], or "
                      "lora_target_linear: true)");
  ParamTable out;
  for (int64_t l = 0; l < L; ++l) {
    const LayerIndex ix = layer_index(t, l);
    for (MatrixRole role : kMatrixRoles) {
      const ParamSpec* p = matrix_of(ix, role);
      if (p == nullptr) continue;
      const std::string module = p->name.substr(0, p->name.size() - std::string_view(".weight").size());
      const std::string leaf = matrix_role_name(role);
      const bool named = unused.count(leaf) > 0 || unused.count(module) > 0 ||
                         std::count(lc.target_modules.begin(), lc.target_modules.end(), leaf) > 0 ||
                         std::count(lc.target_modules.begin(), lc.target_modules.end(), module) > 0;
      if (!all && !named) continue;
      unused.erase(leaf);
      unused.erase(module);
      if (std::find(whole.begin(), whole.end(), p) != whole.end()) {
        if (all) continue;  // trained whole already
        fail<ConfigError>("lora_target_modules: {} is trained whole ({}); drop it from lora_target_modules{}", module,
                          role == MatrixRole::lambda_proj ? "a differential parameter" : "lora_modules_to_save",
                          role == MatrixRole::lambda_proj ? " or set lora_train_diff_params: false" : "");
      }
      if (lc.r > std::min(p->shape[0], p->shape[1]))
        fail<ConfigError>("lora_r {} exceeds the rank a LoRA update of {} [{}, {}] can have (min(out_features, "
                          "in_features) = {}): B A adds nothing beyond it",
                          lc.r, module, p->shape[0], p->shape[1], std::min(p->shape[0], p->shape[1]));
      out.add(module + ".lora_A.weight", {lc.r, p->shape[1]}, ParamInit::lora_a, l);
      out.add(module + ".lora_B.weight", {p->shape[0], lc.r}, ParamInit::lora_b, l);
    }
  }
  if (!unused.empty())
    fail<ConfigError>("lora_target_modules: \"{}\" matches no Linear layer of the decoder layers (this model's are "
                      "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj{}; or all-linear)",
                      *unused.begin(), model.table().find("model.layers.0.self_attn.lambda_proj.weight") ? ", lambda_proj" : "");
  for (const ParamSpec* p : whole) out.add(p->name, p->shape, p->init, p->layer);
  return out;
}

AlignedVector<float> lora_train_values(const Model& model, const ParamTable& table, uint64_t seed,
                                       const LoraAdapter* from) {
  AlignedVector<float> v(table.buffer_floats(), 0.0f);
  params_init_random(table, v, model.config(), seed);
  for (const ParamSpec& p : table.params())
    if (p.kind != ParamKind::adapter) model.read_tensor(model.table().at(p.name), v.data() + p.offset);
  if (from == nullptr) return v;
  const std::string label = (from->dir / "adapter_model.safetensors").string();
  std::set<std::string> given;
  auto put = [&](const std::string& name, const std::vector<float>& values) {
    const ParamSpec* p = table.find(name);
    if (p == nullptr)
      fail<ConfigError>("{}: tensor \"{}{}\" is not trained by this run (check lora_target_modules, "
                        "lora_modules_to_save, lora_train_diff_params and lora_r against the adapter's)",
                        label, kPeftPrefix, name);
    std::copy(values.begin(), values.end(), v.begin() + static_cast<int64_t>(p->offset));
    given.insert(name);
  };
  for (const LoraModule& m : from->modules) {
    put(m.module + ".lora_A.weight", m.a);
    put(m.module + ".lora_B.weight", m.b);
  }
  for (const LoraFullTensor& t : from->full_tensors) put(t.name, t.values);
  for (const ParamSpec& p : table.params())
    if (p.kind == ParamKind::adapter && given.count(p.name) == 0)
      fail<ConfigError>("{}: no tensor \"{}{}\", which this run trains", label, kPeftPrefix, p.name);
  return v;
}

void lora_save(const fs::path& dir, const Model& model) {
  const ParamTable& table = model.trained_table();
  const std::span<const float> values = model.trained_weights();
  const LoraConfig& config = model.lora_config();
  std::vector<TensorWrite> tensors;
  // target_modules: a Linear name when every Linear of that name is adapted, else the module paths
  // (PEFT matches a name against every module path ending in it).
  std::map<std::string, std::vector<std::string>> adapted;  // Linear name -> adapted module paths
  for (const ParamSpec& p : table.params()) {
    tensors.push_back({std::string(kPeftPrefix) + p.name, p.shape, values.data() + p.offset, DType::F32});
    if (p.name.ends_with(".lora_A.weight")) {
      const std::string module = p.name.substr(0, p.name.size() - std::string_view(".lora_A.weight").size());
      adapted[module.substr(module.rfind('.') + 1)].push_back(module);
    }
  }
  std::set<std::string> targets;
  for (const auto& [name, modules] : adapted) {
    int64_t in_model = 0;
    for (int64_t l = 0; l < model.config().num_hidden_layers; ++l)
      for (MatrixRole role : kMatrixRoles)
        in_model += matrix_role_name(role) == name && matrix_of(layer_index(model.table(), l), role) != nullptr;
    if (in_model == static_cast<int64_t>(modules.size())) targets.insert(name);
    else targets.insert(modules.begin(), modules.end());
  }
  safetensors_write(dir / "adapter_model.safetensors", tensors);
  ordered_json j = {{"peft_type", "LORA"},
                    {"task_type", "CAUSAL_LM"},
                    {"base_model_name_or_path", config.base_model_name_or_path},
                    {"r", config.r},
                    {"lora_alpha", config.lora_alpha},
                    {"lora_dropout", config.lora_dropout},
                    {"use_rslora", config.use_rslora},
                    {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
                    {"modules_to_save", nullptr},
                    {"bias", "none"},
                    {"fan_in_fan_out", false},
                    {"use_dora", false},
                    {"init_lora_weights", true},
                    {"inference_mode", true},
                    {"layers_to_transform", nullptr},
                    {"rank_pattern", ordered_json::object()},
                    {"alpha_pattern", ordered_json::object()}};
  if (!config.modules_to_save.empty()) j["modules_to_save"] = config.modules_to_save;
  json_write_file(dir / "adapter_config.json", j);
}

uint64_t lora_dropout_key(uint64_t pass_seed, int64_t layer, MatrixRole role) {
  return mix64(pass_seed ^ mix64(static_cast<uint64_t>(layer) * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(role) + 1));
}

void lora_dropout(const float* x, int64_t n, double p, uint64_t key, float* out) {
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
  const auto threshold = static_cast<uint64_t>(p * 0x1.0p53);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t u = mix64(key + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull) >> 11;  // uniform in [0, 2^53)
    out[i] = u >= threshold ? x[i] * keep_scale : 0.0f;
  }
}

void Model::train_lora(ParamTable table, AlignedVector<float> values, const LoraConfig& config) {
  if (has_lora()) throw std::logic_error("train_lora: an adapter is attached already");
  if (on_device()) throw std::logic_error("train_lora: the model must be on the CPU");
  if (values.size() != table.buffer_floats()) throw std::logic_error("train_lora: values do not match the table");
  auto st = std::make_shared<LoraTraining>();
  st->config = config;
  st->scaling = static_cast<float>(config.scaling());
  st->grad_offset.assign(table_.params().size(), -1);
  lora_layers_.assign(static_cast<size_t>(config_.num_hidden_layers), {});
  uint64_t b_floats = 0;
  for (const ParamSpec& p : table.params()) {
    if (p.kind != ParamKind::adapter) {
      const ParamSpec& base = table_.at(p.name);
      st->grad_offset[static_cast<size_t>(&base - table_.params().data())] = static_cast<int64_t>(p.offset);
    } else if (p.name.ends_with(".lora_B.weight")) {
      b_floats += (p.numel + 15) / 16 * 16;
    }
  }
  st->b_scaled.assign(b_floats, 0.0f);
  st->table = std::move(table);
  st->weights = std::move(values);
  uint64_t b_at = 0;
  for (const ParamSpec& a : st->table.params()) {
    if (!a.name.ends_with(".lora_A.weight")) continue;
    const std::string module = a.name.substr(0, a.name.size() - std::string_view(".lora_A.weight").size());
    const ParamSpec& b = st->table.at(module + ".lora_B.weight");
    const std::optional<LoraTarget> target = lora_target(*this, module);
    if (!target) throw std::logic_error("train_lora: " + module + " is not a Linear of a decoder layer");
    matrix_of(lora_layers_[static_cast<size_t>(target->layer)], target->role) =
        LoraPair{{st->weights.data() + a.offset, nullptr}, {st->b_scaled.data() + b_at, nullptr}, a.shape[0],
                 static_cast<int64_t>(a.offset), static_cast<int64_t>(b.offset)};
    st->scaled_b.push_back({b.offset, b_at, b.numel});
    b_at += (b.numel + 15) / 16 * 16;
    lora_rank_ = std::max(lora_rank_, a.shape[0]);
  }
  lora_train_ = std::move(st);
  trained_weights_updated();
}

const LoraConfig& Model::lora_config() const {
  if (!lora_train_) throw std::logic_error("lora_config: the model is not training LoRA adapters");
  return lora_train_->config;
}

const ParamTable& Model::trained_table() const { return lora_train_ ? lora_train_->table : table_; }

std::span<float> Model::trained_weights() {
  return lora_train_ ? std::span<float>(lora_train_->weights) : weights();
}

std::span<const float> Model::trained_weights() const {
  return lora_train_ ? std::span<const float>(lora_train_->weights) : weights();
}

void Model::trained_weights_updated() {
  refresh_bf16_weight_copies();  // full fine-tuning with bf16 products (the copies exist only there)
  if (!lora_train_) return;
  LoraTraining& st = *lora_train_;
  for (const ParamSpec& p : st.table.params())  // a bf16 matrix gets its master weights rounded
    if (p.kind != ParamKind::adapter) write_tensor(table_.at(p.name), st.weights.data() + p.offset);
  for (const LoraTraining::ScaledB& b : st.scaled_b)
    for (uint64_t i = 0; i < b.numel; ++i) st.b_scaled[b.to + i] = st.scaling * st.weights[b.from + i];
}

void Model::lora_backward(int64_t l, MatrixRole role, const float* x, int64_t N, int64_t in, const float* dy,
                          int64_t out, float* dx, float* grads, uint64_t dropout_seed) const {
  const LoraPair& pair = matrix_of(lora_layers_[static_cast<size_t>(l)], role);
  if (pair.r == 0) return;
  Backend& be = *backend_;
  const int64_t r = pair.r;
  const LoraTraining& st = *lora_train_;
  const double p = st.config.lora_dropout;
  const bool dropout = p > 0 && dropout_seed != 0;
  const uint64_t key = dropout ? lora_dropout_key(dropout_seed, l, role) : 0;
  std::vector<float> x_dropped;
  if (dropout) {  // the forward's mask, drawn again
    x_dropped.resize(static_cast<size_t>(N * in));
    lora_dropout(x, N * in, p, key, x_dropped.data());
    x = x_dropped.data();
  }
  // t = x A^T; y += t (s B)^T. d(sB) = dy^T t, so dB = s dy^T t; dt = dy (sB); dA = dt^T x; dx += dt A.
  std::vector<float> t(static_cast<size_t>(N * r)), dt(static_cast<size_t>(N * r), 0.0f);
  std::vector<float> d_sb(static_cast<size_t>(out * r), 0.0f);
  be.linear_forward(x, N, in, pair.a, nullptr, r, t.data(), /*accumulate=*/false);
  be.linear_backward(t.data(), N, r, pair.b_scaled, out, dy, dt.data(), d_sb.data(), nullptr);
  float* g_b = grads + pair.b_grad;
  for (size_t i = 0; i < d_sb.size(); ++i) g_b[i] += st.scaling * d_sb[i];
  if (!dropout) {
    be.linear_backward(x, N, in, pair.a, r, dt.data(), dx, grads + pair.a_grad, nullptr);
    return;
  }
  std::vector<float> d_x(static_cast<size_t>(N * in), 0.0f);
  be.linear_backward(x, N, in, pair.a, r, dt.data(), d_x.data(), grads + pair.a_grad, nullptr);
  lora_dropout(d_x.data(), N * in, p, key, d_x.data());
  for (size_t i = 0; i < d_x.size(); ++i) dx[i] += d_x[i];
}

}  // namespace difftx
