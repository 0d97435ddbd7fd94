#include "model/finite_logits.h"

#include <cmath>

#include "common/error.h"

namespace difftx {

std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+inf" : "-inf";
  return fmt::format("{:.6g}", v);
}

int64_t first_non_finite_row(const float* logits, int64_t rows, int64_t V) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < V; ++v)
      if (!std::isfinite(logits[r * V + v])) return r;
  return -1;
}

std::string non_finite_cause(const Model& model) {
  return fmt::format("Every weight{} of the model is finite, so its activations overflowed float32 inside the "
                     "forward pass: the weights are far outside a trained model's range (a diverged or badly "
                     "converted model?). Use an earlier checkpoint",
                     model.config().is_differential() ? " and lambda" : "");
}

void fail_non_finite(const Model& model, const char* what, int64_t position) {
  fail<NumericError>("{} at position {} of the input are NaN or infinite. {}", what, position, non_finite_cause(model));
}

}  // namespace difftx
