// Random initialisation as transformers' from_config does it (LlamaPreTrainedModel._init_weights):
// Linear and Embedding weights ~ N(0, initializer_range), biases 0, RMSNorm weights 1, and the
// embedding row of pad_token_id (when set and in range) zero; for differential layouts the lambda
// vectors ~ N(0, lambda_std_dev), lambda_init(l) stored, subln weights 1 (spec §2-§4).
//
// The generator is difftx's own (splitmix64-seeded xoshiro256+ with Box-Muller), so values differ
// from PyTorch's for the same seed; they are the same on every machine and thread count, and
// each parameter's values depend only on the seed and its name.
#pragma once

#include <cstdint>
#include <span>

#include "model/model.h"

namespace difftx {

void model_init_random(Model& model, uint64_t seed);

// The same for any table's tensors (ParamInit), e.g. LoRA's A (uniform in +-1/sqrt(in)) and B (zeros).
void params_init_random(const ParamTable& table, std::span<float> weights, const ModelConfig& config, uint64_t seed);

// Fills out[0, n) with U(-bound, bound) values from the stream (seed, stream_id); deterministic.
void uniform_fill(float* out, uint64_t n, float bound, uint64_t seed, uint64_t stream_id);

// Fills out[0, n) with N(0, stddev) values from the stream (seed, stream_id); deterministic.
void normal_fill(float* out, uint64_t n, float stddev, uint64_t seed, uint64_t stream_id);

}  // namespace difftx
