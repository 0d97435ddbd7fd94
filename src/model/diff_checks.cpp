#include "model/diff_checks.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/attention/layout.h"
#include "model/diff_layout.h"
#include "model/finite_logits.h"

namespace difftx {

namespace {

std::string layer_prefix(int64_t l) { return fmt::format("model.layers.{}.self_attn.", l); }

bool all_zero(const float* p, uint64_t n) {
  return std::all_of(p, p + n, [](float v) { return v == 0.0f; });
}

// Whether rows [first, first + count) of a [rows, cols] parameter (and of its bias, if any) are all zero.
bool rows_zero(const Model& model, const std::string& name, int64_t first, int64_t count) {
  const ParamSpec& w = model.table().at(name + ".weight");
  const int64_t cols = w.shape[1];
  std::vector<float> values(w.numel);  // float32 or bf16 (LoRA training's frozen matrices)
  model.read_tensor(w, values.data());
  if (!all_zero(values.data() + first * cols, static_cast<uint64_t>(count * cols))) return false;
  const ParamSpec* b = model.table().find(name + ".bias");
  return b == nullptr || all_zero(model.param(b->name) + first, static_cast<uint64_t>(count));
}

// "0-3, 5" for sorted layer indices.
std::string layer_list(const std::vector<int64_t>& layers) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < layers.size();) {
    size_t j = i;
    while (j + 1 < layers.size() && layers[j + 1] == layers[j] + 1) ++j;
    parts.push_back(j == i ? fmt::format("{}", layers[i]) : fmt::format("{}-{}", layers[i], layers[j]));
    i = j + 1;
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

std::string non_finite_lambda(const Model& model) {
  const ModelConfig& c = model.config();
  if (!layout_module(c).lambda_per_layer()) return {};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const float lambda = model.layer_lambda(l);
    if (std::isfinite(lambda)) continue;
    const std::string p = layer_prefix(l);
    const DiffLambdaParts parts =
        diff_lambda_parts(model.param(p + "lambda_q1"), model.param(p + "lambda_k1"), model.param(p + "lambda_q2"),
                          model.param(p + "lambda_k2"), c.head_dim, 0.0f);
    std::string why;
    auto explain = [&](const char* dot, float value) {
      if (std::isfinite(std::exp(value))) return;
      if (!why.empty()) why += "; ";
      why += std::isfinite(value) ? fmt::format("{} = {:.6g} overflows float32 exp (past 88.72)", dot, value)
                                  : fmt::format("{} is {}", dot, number_text(value));
    };
    explain("lambda_q1 · lambda_k1", parts.dot1);
    explain("lambda_q2 · lambda_k2", parts.dot2);
    if (why.empty()) why = "lambda_init is not finite";
    return fmt::format("layer {}: lambda = exp(lambda_q1 · lambda_k1) - exp(lambda_q2 · lambda_k2) + lambda_init is {} "
                       "({}) from {}lambda_q1, lambda_k1, lambda_q2, lambda_k2",
                       l, number_text(lambda), why, p);
  }
  return {};
}

std::string stuck_negative_component(const Model& model) {
  const ModelConfig& c = model.config();
  if (!layout_module(c).lambda_per_layer()) return {};
  const uint64_t d = static_cast<uint64_t>(c.head_dim);
  std::vector<int64_t> frozen_lambda, zero_lambda, uniform_map;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = layer_prefix(l);
    if (all_zero(model.param(p + "lambda_q1"), d) && all_zero(model.param(p + "lambda_k1"), d) &&
        all_zero(model.param(p + "lambda_q2"), d) && all_zero(model.param(p + "lambda_k2"), d)) {
      if (model.layer_lambda(l) == 0.0f) zero_lambda.push_back(l);
      else frozen_lambda.push_back(l);
    }
    if (c.double_heads() && rows_zero(model, p + "q_proj", c.q_dim(), c.q_dim()) &&
        rows_zero(model, p + "k_proj", c.kv_dim(), c.kv_dim()))
      uniform_map.push_back(l);
  }
  std::vector<std::string> found;
  if (!zero_lambda.empty())
    found.push_back(fmt::format("layers {}: lambda_q1, lambda_k1, lambda_q2, lambda_k2 and lambda_init are all zero, "
                                "so lambda = 0 and neither lambda nor the negative attention map gets a gradient",
                                layer_list(zero_lambda)));
  if (!frozen_lambda.empty())
    found.push_back(fmt::format("layers {}: lambda_q1, lambda_k1, lambda_q2 and lambda_k2 are all zero, so their "
                                "gradients are zero and lambda stays lambda_init",
                                layer_list(frozen_lambda)));
  if (!uniform_map.empty())
    found.push_back(fmt::format("layers {}: the negative q_proj and k_proj rows are all zero, so their gradients are "
                                "zero and the negative attention map stays uniform",
                                layer_list(uniform_map)));
  if (found.empty()) return {};
  return fmt::format("the negative (differential) component can never train: {}. Training leaves these tensors "
                     "exactly as they are, so the model never becomes differential. To get a differential model "
                     "that trains, convert without --zero-init",
                     fmt::join(found, "; "));
}

}  // namespace difftx
