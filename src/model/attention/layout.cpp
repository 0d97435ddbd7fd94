#include "model/attention/layout.h"

#include <cmath>
#include <stdexcept>

#include "common/error.h"
#include "model/attention/modules.h"

namespace difftx {

double lambda_init_for_layer(int64_t layer) { return 0.8 - 0.6 * std::exp(-0.3 * static_cast<double>(layer)); }

void add_lambda_vectors(ParamTable& t, const ModelConfig& c, const std::string& prefix, int64_t layer) {
  for (const char* name : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
    t.add(prefix + "self_attn." + name, {c.head_dim}, ParamInit::lambda, layer);
}

void refuse_init_identity_with_head_norm(const ConvertOptions& o) {
  if (o.init == ConvertInit::identity)
    fail<ConfigError>("--init identity does not apply to --format {}: its RMSNorm over each head and the "
                      "(1 - lambda_init) scale change the function, so the base model cannot be reproduced",
                      attention_layout_name(o.layout));
}

namespace {

double l2_norm(const float* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

}  // namespace

AttentionLayoutModule::LambdaMetrics lambda_vector_metrics(const AttentionLayoutModule& layout, const ModelConfig& c,
                                                           const LayerWeights& w, int64_t layer, float diff_attn_mix) {
  const int64_t d = c.head_dim;
  const float *q1 = w.lambda_q1, *k1 = w.lambda_k1, *q2 = w.lambda_q2, *k2 = w.lambda_k2;
  double s1 = 0, s2 = 0;
  for (int64_t i = 0; i < d; ++i) {
    s1 += static_cast<double>(q1[i]) * k1[i];
    s2 += static_cast<double>(q2[i]) * k2[i];
  }
  const double lambda1 = std::exp(s1), lambda2 = std::exp(s2);
  const double lambda_init = layout.lambda_init(w.lambda_init, layer);
  const double q1n = l2_norm(q1, d), q2n = l2_norm(q2, d), k1n = l2_norm(k1, d), k2n = l2_norm(k2, d);
  const double mix = layout.warmup_mix() ? diff_attn_mix : 1.0;
  AttentionLayoutModule::LambdaMetrics m;
  m.per_layer = {{"lambda_q1_norm", q1n}, {"lambda_k1_norm", k1n}, {"lambda_q2_norm", q2n},
                 {"lambda_k2_norm", k2n}, {"lambda1", lambda1},    {"lambda2", lambda2},
                 {"lambda_init", lambda_init}, {"lambda_full", lambda1 - lambda2 + lambda_init}};
  m.aggregated = {{"lambda_q1_norm", q1n}, {"lambda_q2_norm", q2n}, {"lambda_k1_norm", k1n},
                  {"lambda_k2_norm", k2n}, {"lambda1", lambda1},    {"lambda2", lambda2},
                  {"lambda_full", mix * (lambda1 - lambda2 + lambda_init)}};
  return m;
}

const AttentionLayoutModule& layout_module(const ModelConfig& config) { return layout_module(config.layout); }

const AttentionLayoutModule& layout_module(AttentionLayout layout) {
  switch (layout) {
    case AttentionLayout::standard: return standard_attention();
    case AttentionLayout::llama_differential: return llama_differential_attention();
    case AttentionLayout::diffllama: return diffllama_attention();
    case AttentionLayout::diff_v1: return diff_v1_attention();
    case AttentionLayout::diff_v2: return diff_v2_attention();
  }
  throw std::logic_error("layout_module: unknown attention layout");
}

}  // namespace difftx
