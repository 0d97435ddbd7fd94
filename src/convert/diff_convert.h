// Converting a Llama-family model to differential attention (spec §5; the seed's
// `convert-diff-transformer`, done natively).
#pragma once

#include <cstdint>
#include <string>

#include "model/attention/conversion.h"
#include "model/model.h"

namespace difftx {

// Throws ConfigError, before any work, for: a base that is already differential; split-heads with
// zero-init; zero-init with mirror-weights; split-heads (or diffllama) with an odd head count;
// mirror-weights with split-heads (the negative heads are the model's own; the seed ignores it);
// zero-init, mirror-weights or --no-sublayer-norm with the diffllama format; split-heads, zero-init,
// mirror-weights, --no-sublayer-norm or odd head counts (H or KV) with diff-v1; --init identity with
// subln, split-heads, zero-init, diffllama or diff-v1.
void convert_options_check(const ModelConfig& base, const ConvertOptions& options);

// The differential config: every base key kept, plus model_type / architectures / flags of the
// layout (spec §3, §4), and base_model_type when the base family is not llama.
ModelConfig convert_config(const ModelConfig& base, const ConvertOptions& options);

// The differential model (spec §5):
//   double mode: q_proj/k_proj rows [0, H*d) / [0, KV*d) copied; the negative rows are
//     U(-1/sqrt(D), 1/sqrt(D)) (PyTorch's default Linear init, as the seed ends up with), 0 with
//     zero_init, or a copy of the positive rows with mirror_weights; their biases (Qwen2, attention_bias)
//     are 0, or copied with mirror_weights.
//   diff-v1: every Llama tensor copied unchanged (the heads are regrouped, not resized).
//   split mode and diffllama: q_proj/k_proj copied whole (the seed forgets this in split mode);
//     o_proj's input columns, H blocks of d, reordered so that block 2i is the base's block i and
//     block 2i+1 the base's block i + H/2 (diff-head i writes [value of head i ; value of head
//     i + H/2] there), unless plain_o_proj.
//   lambda vectors ~ N(0, 0.1) (0 with zero_init; with init identity lambda_q2 = lambda_q1 and
//   lambda_k2 = lambda_k1, drawn once); lambda_init(l) stored (0 with zero_init or init identity);
//   subln weights 1; every other tensor copied.
Model convert_model(const Model& base, const ConvertOptions& options);


}  // namespace difftx
