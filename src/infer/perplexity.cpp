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

void sliding_windows(int64_t N, const EvaluateOptions& o,
                     const std::function<void(const ScoredWindow&, int64_t, int64_t)>& fn) {
  if (o.context < 2) fail<ConfigError>("--context must be at least 2, got {}", o.context);
  if (o.stride < 1 || o.stride > o.context)
    fail<ConfigError>("--stride must be between 1 and --context ({}), got {}", o.context, o.stride);
  if (N < 2) fail<ShapeError>("evaluation needs at least 2 tokens, got {}", N);
  const int64_t total_windows = N <= o.context ? 1 : 1 + (N - o.context + o.stride - 1) / o.stride;
  int64_t scored_until = 1;  // tokens [1, scored_until) have been scored
  int64_t index = 0;
  for (int64_t begin = 0; scored_until < N; begin += o.stride) {
    const int64_t end = std::min(begin + o.context, N);
    // A window's first token has no history inside it: when stride == context it is not scored.
    const ScoredWindow w{begin, end, std::max<int64_t>(scored_until - 1 - begin, 0), end - 1 - begin};
    fn(w, index++, total_windows);
    scored_until = end;
  }
}

EvaluateResult evaluate_perplexity(const Model& model, std::span<const int32_t> ids, const EvaluateOptions& o,
                                   const std::function<void(int64_t, int64_t)>& on_window) {
  EvaluateResult r;
  r.tokens = static_cast<int64_t>(ids.size());
  auto t0 = std::chrono::steady_clock::now();
  sliding_windows(r.tokens, o, [&](const ScoredWindow& w, int64_t, int64_t total_windows) {
    const int64_t begin = w.begin, end = w.end, first = w.first, last = w.last;
    TokenBatch batch;
    batch.seq_len = end - begin;
    batch.ids.assign(ids.begin() + begin, ids.begin() + end);
    const Buffer hidden = model.forward_on_backend(batch, nullptr, LogitsMode::hidden);
    r.forward_tokens += end - begin;
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
    r.windows += 1;
    if (on_window) on_window(r.windows, total_windows);
  });
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.mean_loss = r.total_nll / static_cast<double>(r.scored);
  r.perplexity = std::exp(r.mean_loss);
  return r;
}

}  // namespace difftx
