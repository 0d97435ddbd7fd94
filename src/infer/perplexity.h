// Perplexity of a token sequence with a sliding window (the protocol of transformers' "Perplexity
// of fixed-length models" guide, scored per token):
//   windows start at 0, stride, 2*stride, ...; each covers up to `context` tokens; the tokens a
//   window scores are those after the previous window's end (all of them for the first window),
//   each predicted from every earlier token inside the window. So every token but the first is
//   scored exactly once, with at least context - stride tokens of history when the text is long
//   (with stride == context the first token of each window has no history and is not scored).
//   mean loss = (sum of -log p(token | history)) / scored tokens; perplexity = exp(mean loss).
// Memory: the forward's activations for one window plus a [chunk, V] logits block, linear in
// context (no [context, V] buffer).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "model/model.h"

namespace difftx {

struct EvaluateOptions {
  int64_t context = 512;  // tokens per window
  int64_t stride = 256;   // tokens between window starts (<= context)
};

struct EvaluateResult {
  int64_t tokens = 0;        // in the sequence
  int64_t scored = 0;        // tokens whose loss was counted (tokens - 1 when stride < context)
  int64_t windows = 0;
  double total_nll = 0;      // nats
  double mean_loss = 0;      // nats per scored token
  double perplexity = 0;
  double seconds = 0;
  int64_t forward_tokens = 0;  // tokens run through the model (windows overlap)
};

// One window of the protocol above: tokens [begin, end) run through the model; positions p in
// [first, last) (relative to begin) are scored, position p predicting token begin + p + 1.
struct ScoredWindow {
  int64_t begin = 0, end = 0, first = 0, last = 0;
};

// Calls fn(window, index, total) for each window of a sequence of n_tokens, in order. Throws
// ConfigError for context < 2, stride < 1 or stride > context; ShapeError for fewer than 2 tokens.
void sliding_windows(int64_t n_tokens, const EvaluateOptions& options,
                     const std::function<void(const ScoredWindow&, int64_t, int64_t)>& fn);

// on_window(done, total) after each window (progress). Throws ConfigError for context < 2,
// stride < 1 or stride > context; ShapeError for fewer than 2 tokens or ids outside the vocabulary.
EvaluateResult evaluate_perplexity(const Model& model, std::span<const int32_t> ids, const EvaluateOptions& options,
                                   const std::function<void(int64_t, int64_t)>& on_window = nullptr);

}  // namespace difftx
