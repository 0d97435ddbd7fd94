// Inference never reports NaN or infinite logits as a result: forward, eval and generate stop with
// a NumericError (exit 2) naming the first non-finite position and the likely cause.
#pragma once

#include <cstdint>
#include <string>

#include "model/model.h"

namespace difftx {

// "NaN", "+inf", "-inf", or the number with 6 significant digits (fmt prints NaN as "-nan").
std::string number_text(double value);

// Index of the first row of logits[rows, V] (host memory) holding a NaN or infinity, or -1.
int64_t first_non_finite_row(const float* logits, int64_t rows, int64_t V);

// The likely cause of non-finite logits or losses, as a sentence (loading checked every stored
// tensor and derived lambda).
std::string non_finite_cause(const Model& model);

// Throws NumericError: "<what> at position <position> ... likely cause ...". `what` names the
// quantity ("the logits", "the loss"); position counts tokens of the input from 0.
[[noreturn]] void fail_non_finite(const Model& model, const char* what, int64_t position);

}  // namespace difftx
