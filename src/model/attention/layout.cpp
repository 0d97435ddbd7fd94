#include "model/attention/layout.h"

#include <cmath>
#include <stdexcept>

#include "model/attention/modules.h"

namespace difftx {

double lambda_init_for_layer(int64_t layer) { return 0.8 - 0.6 * std::exp(-0.3 * static_cast<double>(layer)); }

void add_lambda_vectors(ParamTable& t, const ModelConfig& c, const std::string& prefix, int64_t layer) {
  for (const char* name : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
    t.add(prefix + "self_attn." + name, {c.head_dim}, ParamInit::lambda, layer);
}

const AttentionLayoutModule& layout_module(const ModelConfig& config) { return layout_module(config.layout); }

const AttentionLayoutModule& layout_module(AttentionLayout layout) {
  switch (layout) {
    case AttentionLayout::standard: return standard_attention();
    case AttentionLayout::llama_differential: return llama_differential_attention();
    case AttentionLayout::diffllama: return diffllama_attention();
  }
  throw std::logic_error("layout_module: unknown attention layout");
}

}  // namespace difftx
