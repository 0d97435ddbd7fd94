// The options of a conversion from a standard model to a differential layout (docs/FORMATS.md §5;
// `difftx convert-diff-transformer`): what the layout modules (layout.h) check and write into the
// converted config, and what convert/diff_convert uses to make the new tensors.
#pragma once

#include <cstdint>

#include "io/model_config.h"

namespace difftx {

// How the new parameters start (convert's --init): `random` is the seed's rule (docs/FORMATS.md §5);
// `identity` starts exactly at the base model's function with every new parameter able to train
// (spec §9): llama-differential without subln, lambda_init 0, lambda_q2 = lambda_q1 and
// lambda_k2 = lambda_k1, so lambda = 0 exactly while d lambda / d lambda_q1 != 0.
enum class ConvertInit { random, identity };

struct ConvertOptions {
  // The output layout: llama_differential (the seed's checkpoint format, spec §3, default) or
  // diffllama (transformers' DiffLlama, spec §4).
  AttentionLayout layout = AttentionLayout::llama_differential;
  ConvertInit init = ConvertInit::random;
  bool zero_init = false;       // negative q/k rows, lambda vectors and lambda_init = 0
  bool sublayer_norm = true;    // subln per head (llama-differential)
  bool sublayer_norm_given = false;  // the user passed --sublayer-norm / --no-sublayer-norm explicitly
  bool split_heads = false;     // "split" mode instead of "double"
  bool mirror_weights = false;  // negative q/k rows copied from the positive rows
  // Split mode and diffllama regroup the value heads in pairs (i, i + H/2); by default o_proj's input
  // column blocks are permuted to follow them. plain_o_proj copies o_proj unchanged (the seed's and
  // the earlier difftx conversion).
  bool plain_o_proj = false;
  uint64_t seed = 0;            // for the freshly initialised negative rows and lambda vectors
};

}  // namespace difftx
