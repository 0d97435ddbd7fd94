// The layout modules (one file each), for layout.cpp's registry.
#pragma once

#include "model/attention/layout.h"

namespace difftx {

const AttentionLayoutModule& standard_attention();            // standard.cpp (spec §1)
const AttentionLayoutModule& llama_differential_attention();  // llama_differential.cpp (spec §3)
const AttentionLayoutModule& diffllama_attention();           // diffllama.cpp (spec §4)

// The four lambda vectors [d] of a differential layer, in checkpoint order (spec §2).
void add_lambda_vectors(ParamTable& table, const ModelConfig& config, const std::string& prefix, int64_t layer);

}  // namespace difftx
