#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <stdexcept>

#include "common/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/layer_pass.h"
#include "model/model.h"

namespace difftx {

namespace fs = std::filesystem;

namespace {

// A list-of-strings key (null: empty; one string: a list of it), as PEFT accepts target_modules.
std::vector<std::string> string_list(const ordered_json& j, const char* key, const std::string& label) {
  std::vector<std::string> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  const ordered_json& v = j[key];
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) fail<ConfigError>("{}: \"{}\" must be a list of module names, got {}", label, key, json_type_name(v));
  for (const ordered_json& e : v) {
    if (!e.is_string()) fail<ConfigError>("{}: \"{}\" must hold module names (strings), got {}", label, key, json_type_name(e));
    out.push_back(e.get<std::string>());
  }
  return out;
}

LoraConfig read_config(const fs::path& path) {
  const std::string label = path.string();
  if (!fs::exists(path))
    fail<FileError>("{}: no adapter_config.json (a PEFT LoRA adapter directory holds adapter_config.json and "
                    "adapter_model.safetensors)", label);
  const ordered_json j = json_read_file(path);
  if (!j.is_object()) fail<ConfigError>("{}: expected a JSON object, got {}", label, json_type_name(j));
  auto text = [&](const char* key, const std::string& fallback) {
    if (!j.contains(key)) return fallback;
    if (!j[key].is_string()) fail<ConfigError>("{}: \"{}\" must be a string, got {}", label, key, json_type_name(j[key]));
    return j[key].get<std::string>();
  };
  if (!j.contains("peft_type"))
    fail<ConfigError>("{}: no \"peft_type\" (a PEFT adapter_config.json names its method: \"LORA\")", label);
  const std::string type = text("peft_type", "");
  if (type != "LORA")
    fail<ConfigError>("{}: peft_type \"{}\": only LoRA adapters (\"LORA\") are supported", label, type);
  auto number = [&](const char* key, double fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number()) fail<ConfigError>("{}: \"{}\" must be a number, got {}", label, key, json_type_name(j[key]));
    return j[key].get<double>();
  };
  auto flag = [&](const char* key) {
    if (!j.contains(key) || j[key].is_null()) return false;
    if (!j[key].is_boolean()) fail<ConfigError>("{}: \"{}\" must be true or false, got {}", label, key, json_type_name(j[key]));
    return j[key].get<bool>();
  };
  LoraConfig c;
  c.r_given = j.contains("r") && !j["r"].is_null();
  const double r = number("r", 8);  // PEFT's default
  if (r < 1 || r != std::floor(r) || r > (1 << 20))
    fail<ConfigError>("{}: \"r\" (the LoRA rank) must be a whole number >= 1, got {}", label, r);
  c.r = static_cast<int64_t>(r);
  c.lora_alpha = number("lora_alpha", 8);
  if (!std::isfinite(c.lora_alpha) || std::abs(c.lora_alpha) > 1e6)
    fail<ConfigError>("{}: \"lora_alpha\" must be a finite number of at most 1e6 in size, got {}", label, c.lora_alpha);
  c.lora_dropout = number("lora_dropout", 0);
  c.use_rslora = flag("use_rslora");
  c.target_modules = string_list(j, "target_modules", label);
  c.target_modules_listed = j.contains("target_modules") && j["target_modules"].is_array();
  c.modules_to_save = string_list(j, "modules_to_save", label);
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    c.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
  if (flag("use_dora")) fail<ConfigError>("{}: use_dora: DoRA adapters are not supported (plain LoRA only)", label);
  if (flag("fan_in_fan_out"))
    fail<ConfigError>("{}: fan_in_fan_out: true is for GPT-2's Conv1D layers; Llama-family Linear layers store "
                      "[out, in]", label);
  if (flag("lora_bias")) fail<ConfigError>("{}: lora_bias: adapters with a bias are not supported", label);
  if (const std::string bias = text("bias", "none"); bias != "none")
    fail<ConfigError>("{}: bias \"{}\": only bias \"none\" is supported", label, bias);
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (j.contains(key) && !j[key].is_null() && !(j[key].is_object() && j[key].empty()))
      fail<ConfigError>("{}: \"{}\": per-module ranks and alphas are not supported (one r and lora_alpha for "
                        "every module)", label, key);
  return c;
}

std::string shape_text(const ParamSpec& p) {
  TensorInfo t;
  t.shape = p.shape;
  return t.shape_string();
}

void check_finite(const std::vector<float>& values, const std::string& tensor, const std::string& label) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      fail<ConfigError>("{}: tensor \"{}\" holds a non-finite value ({}) at index {}", label, tensor, values[i], i);
}

}  // namespace

std::optional<LoraTarget> lora_target(const Model& model, const std::string& module) {
  const ParamSpec* p = model.table().find(module + ".weight");
  if (p == nullptr || p->kind != ParamKind::matrix) return std::nullopt;
  for (int64_t l = 0; l < model.config().num_hidden_layers; ++l) {
    const LayerIndex index = layer_index(model.table(), l);
    for (MatrixRole role : kMatrixRoles)
      if (matrix_of(index, role) == p) return LoraTarget{l, role, p};
  }
  return std::nullopt;
}

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

LoraAdapter lora_load(const fs::path& dir, const Model& model) {
  LoraAdapter a;
  a.dir = dir;
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail<FileError>("{}: no such adapter directory", dir.string());
  if (!fs::is_directory(dir, ec))
    fail<FileError>("{}: not a directory (a LoRA adapter is a directory holding adapter_config.json and "
                    "adapter_model.safetensors)", dir.string());
  a.config = read_config(dir / "adapter_config.json");
  const fs::path weights = dir / "adapter_model.safetensors";
  if (!fs::exists(weights))
    fail<FileError>("{}: no adapter_model.safetensors (PEFT's adapter_model.bin pickles are not read; save with "
                    "safe_serialization=True)", weights.string());
  const SafetensorsFile file(weights);
  const std::string label = weights.string();
  // lora_A / lora_B pairs by module path, in file order of their first tensor.
  std::map<std::string, std::pair<const TensorInfo*, const TensorInfo*>> pairs;
  std::vector<std::string> order;
  for (const TensorInfo& t : file.tensors()) {
    if (!t.name.starts_with(kPeftPrefix))
      fail<ConfigError>("{}: tensor \"{}\" does not start with \"{}\" (PEFT's names for a causal LM)", label, t.name,
                        kPeftPrefix);
    const std::string name = t.name.substr(kPeftPrefix.size());
    for (const char* part : {".lora_A.weight", ".lora_B.weight"}) {
      if (!name.ends_with(part)) continue;
      const std::string module = name.substr(0, name.size() - std::string_view(part).size());
      auto [it, added] = pairs.try_emplace(module);
      if (added) order.push_back(module);
      (part[6] == 'A' ? it->second.first : it->second.second) = &t;
    }
    if (name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight")) continue;
    if (name.find(".lora_") != std::string::npos)
      fail<ConfigError>("{}: tensor \"{}\": only lora_A / lora_B of Linear layers are supported (not DoRA "
                        "magnitudes, LoRA biases or embedding adapters)", label, t.name);
    // A module saved whole (modules_to_save): the model's tensor of that name, same shape.
    const ParamSpec* p = model.table().find(name);
    if (p == nullptr)
      fail<ConfigError>("{}: tensor \"{}\": the model has no tensor \"{}\"{}", label, t.name, name,
                        name == "lm_head.weight" && model.config().tie_word_embeddings
                            ? " (its lm_head is tied to model.embed_tokens.weight: tie_word_embeddings)"
                            : "");
    if (t.shape != p->shape)
      fail<ShapeError>("{}: tensor \"{}\" has shape {}, but the model's {} is {}", label, t.name, t.shape_string(), name,
                       shape_text(*p));
    LoraFullTensor full{name, std::vector<float>(t.numel())};
    file.load_f32(t, full.values.data());
    check_finite(full.values, t.name, label);
    a.full_tensors.push_back(std::move(full));
  }
  for (const std::string& module : order) {
    const auto& [ta, tb] = pairs[module];
    if (ta == nullptr || tb == nullptr)
      fail<ConfigError>("{}: module \"{}\" has {} but no {}", label, module, ta ? "lora_A" : "lora_B",
                        ta ? "lora_B" : "lora_A");
    if (a.config.target_modules_listed &&
        std::none_of(a.config.target_modules.begin(), a.config.target_modules.end(), [&](const std::string& name) {
          return module == name || (module.size() > name.size() && module.ends_with("." + name));
        }))
      fail<ConfigError>("{}: module \"{}\" has LoRA tensors, but adapter_config.json's target_modules [{}] do not "
                        "name it (PEFT would not adapt it): the config and the weights are of different adapters",
                        label, module, fmt::format("{}", fmt::join(a.config.target_modules, ", ")));
    const std::optional<LoraTarget> target = lora_target(model, module);
    if (!target)
      fail<ConfigError>("{}: module \"{}\" is not a Linear layer of a decoder layer of this model ({} decoder "
                        "layers; LoRA on embed_tokens or lm_head is not supported)",
                        label, module, model.config().num_hidden_layers);
    const int64_t out = target->weight->shape[0], in = target->weight->shape[1];
    const std::string r_note =
        a.config.r_given ? "" : "; adapter_config.json has no \"r\", so r is PEFT's default 8";
    if (ta->shape.size() != 2 || ta->shape[0] != a.config.r || ta->shape[1] != in)
      fail<ShapeError>("{}: {} has shape {}, expected [{}, {}] ([r, in_features] of {}.weight {}{})", label, ta->name,
                       ta->shape_string(), a.config.r, in, module, shape_text(*target->weight), r_note);
    if (tb->shape.size() != 2 || tb->shape[0] != out || tb->shape[1] != a.config.r)
      fail<ShapeError>("{}: {} has shape {}, expected [{}, {}] ([out_features, r] of {}.weight {}{})", label, tb->name,
                       tb->shape_string(), out, a.config.r, module, shape_text(*target->weight), r_note);
    LoraModule m{module, target->layer, target->role, a.config.r, in, out, std::vector<float>(ta->numel()),
                 std::vector<float>(tb->numel())};
    file.load_f32(*ta, m.a.data());
    file.load_f32(*tb, m.b.data());
    check_finite(m.a, ta->name, label);
    check_finite(m.b, tb->name, label);
    a.modules.push_back(std::move(m));
  }
  if (a.modules.empty() && a.full_tensors.empty()) fail<ConfigError>("{}: the adapter holds no tensors", label);
  return a;
}

void lora_merge(const LoraAdapter& adapter, Model& model) {
  for (const LoraFullTensor& t : adapter.full_tensors) std::copy(t.values.begin(), t.values.end(), model.param(t.name));
  const double s = adapter.config.scaling();
  for (const LoraModule& m : adapter.modules) {
    float* w = model.param(m.module + ".weight");  // [out, in]
    // W[o, i] += s * sum_k B[o, k] A[k, i], summed in double: the merged weight rounds once.
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < m.out; ++o) {
      std::vector<double> row(static_cast<size_t>(m.in), 0.0);
      for (int64_t k = 0; k < m.r; ++k) {
        const double bk = m.b[o * m.r + k];
        const float* ak = &m.a[k * m.in];
        for (int64_t i = 0; i < m.in; ++i) row[i] += bk * ak[i];
      }
      for (int64_t i = 0; i < m.in; ++i) w[o * m.in + i] = static_cast<float>(w[o * m.in + i] + s * row[i]);
    }
  }
}

}  // namespace difftx

namespace difftx {

void Model::attach_lora(const LoraAdapter& adapter) {
  if (has_lora()) throw std::logic_error("attach_lora: an adapter is attached already");
  if (matrices_in_bf16() || on_device())
    throw std::logic_error("attach_lora: attach the adapter before keeping the matrices in bf16 or placing the model");
  for (const LoraFullTensor& t : adapter.full_tensors) std::copy(t.values.begin(), t.values.end(), param(t.name));
  if (adapter.modules.empty()) return;
  // One buffer: each module's A, then scaling * B, each 64-byte aligned.
  auto padded = [](int64_t n) { return (n + 15) / 16 * 16; };
  int64_t floats = 0;
  for (const LoraModule& m : adapter.modules) floats += padded(m.r * m.in) + padded(m.out * m.r);
  std::vector<float> host(static_cast<size_t>(floats), 0.0f);
  const auto scaling = static_cast<float>(adapter.config.scaling());
  std::vector<std::pair<int64_t, int64_t>> offsets;  // of A and of B, per module
  int64_t at = 0;
  for (const LoraModule& m : adapter.modules) {
    std::copy(m.a.begin(), m.a.end(), host.begin() + at);
    const int64_t b = at + padded(m.r * m.in);
    for (size_t i = 0; i < m.b.size(); ++i) host[b + i] = scaling * m.b[i];
    offsets.emplace_back(at, b);
    at = b + padded(m.out * m.r);
  }
  lora_backend_ = backend_;
  lora_weights_ = backend_->alloc_array<float>(floats);
  backend_->upload(lora_weights_.as<void>(), host.data(), host.size() * sizeof(float));
  lora_layers_.assign(static_cast<size_t>(config_.num_hidden_layers), {});
  for (size_t i = 0; i < adapter.modules.size(); ++i) {
    const LoraModule& m = adapter.modules[i];
    const float* base = lora_weights_.as<const float>();
    matrix_of(lora_layers_[static_cast<size_t>(m.layer)], m.role) =
        LoraPair{{base + offsets[i].first, nullptr}, {base + offsets[i].second, nullptr}, m.r};
    lora_rank_ = std::max(lora_rank_, m.r);
  }
}

void Model::lora_forward(const LayerPass& s, int64_t l, MatrixRole role, const float* x, int64_t in, float* y,
                         int64_t out) const {
  const LoraPair& pair = matrix_of(lora_layers_[static_cast<size_t>(l)], role);
  if (pair.r == 0) return;
  std::vector<float> dropped;  // training with lora_dropout (host memory: the CPU backend trains)
  if (lora_train_ && lora_train_->config.lora_dropout > 0 && s.lora_dropout_seed != 0) {
    dropped.resize(static_cast<size_t>(s.N * in));
    lora_dropout(x, s.N * in, lora_train_->config.lora_dropout, lora_dropout_key(s.lora_dropout_seed, l, role), dropped.data());
    x = dropped.data();
  }
  s.be.linear_forward(x, s.N, in, pair.a, nullptr, pair.r, s.lora_t, /*accumulate=*/false);
  s.be.linear_forward(s.lora_t, s.N, pair.r, pair.b_scaled, nullptr, out, y, /*accumulate=*/true);
}

}  // namespace difftx
