#include "infer/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "model/finite_logits.h"

namespace difftx {

namespace {

constexpr int64_t kLogitRows = 128;  // rows of logits computed at a time

}  // namespace

EvaluateResult evaluate_perplexity(const Model& model, std::span<const int32_t> ids, const EvaluateOptions& o,
                                   const std::function<void(int64_t, int64_t)>& on_window) {
  if (o.context < 2) fail<ConfigError>("--context must be at least 2, got {}", o.context);
  if (o.stride < 1 || o.stride > o.context)
    fail<ConfigError>("--stride must be between 1 and --context ({}), got {}", o.context, o.stride);
  const int64_t N = static_cast<int64_t>(ids.size());
  if (N < 2) fail<ShapeError>("evaluation needs at least 2 tokens, got {}", N);

  EvaluateResult r;
  r.tokens = N;
  const int64_t total_windows = N <= o.context ? 1 : 1 + (N - o.context + o.stride - 1) / o.stride;
  auto t0 = std::chrono::steady_clock::now();
  int64_t scored_until = 1;  // tokens [1, scored_until) have been scored
  for (int64_t begin = 0; scored_until < N; begin += o.stride) {
    const int64_t end = std::min(begin + o.context, N);
    TokenBatch batch;
    batch.seq_len = end - begin;
    batch.ids.assign(ids.begin() + begin, ids.begin() + end);
    const Buffer hidden = model.forward_on_backend(batch, nullptr, LogitsMode::hidden);
    r.forward_tokens += end - begin;
    // Position p (in the window) predicts token begin + p + 1; score those not yet scored.
    // A window's first token has no history inside it: when stride == context it is not scored.
    const int64_t first = std::max<int64_t>(scored_until - 1 - begin, 0), last = end - 1 - begin;
    for (int64_t p0 = first; p0 < last; p0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, last - p0);
      const float* h = hidden.as<const float>() + p0 * model.config().hidden_size;
      const double nll = model.next_token_nll(h, rows, &ids[begin + p0 + 1]);
      if (!std::isfinite(nll))  // a finite row's loss is finite: find the first row that is not
        for (int64_t k = 0; k < rows; ++k)
          if (!std::isfinite(model.next_token_nll(h + k * model.config().hidden_size, 1, &ids[begin + p0 + 1 + k])))
            fail_non_finite(model, "the logits", begin + p0 + k);
      if (!std::isfinite(nll)) fail_non_finite(model, "the logits", begin + p0);
      r.total_nll += nll;
    }
    r.scored += last - first;
    scored_until = end;
    r.windows += 1;
    if (on_window) on_window(r.windows, total_windows);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.mean_loss = r.total_nll / static_cast<double>(r.scored);
  r.perplexity = std::exp(r.mean_loss);
  return r;
}

}  // namespace difftx
