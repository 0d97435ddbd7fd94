// Numbers in the text a person reads (progress lines, summaries); JSON output keeps full precision.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace difftx {

// `decimals` fixed decimals (as transformers' Trainer logs a loss: 4) while |x| < 1e6, then
// scientific with as many significant decimals, so that a run that diverged prints a loss of
// 3.4028e+38 rather than 39 digits. inf and nan stay "inf" and "nan".
inline std::string number_text(double x, int decimals) {
  if (!std::isfinite(x) || std::fabs(x) < 1e6) return fmt::format("{:.{}f}", x, decimals);
  return fmt::format("{:.{}e}", x, decimals);
}

}  // namespace difftx
