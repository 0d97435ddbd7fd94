// --weight-dtype for the inference commands (forward, generate, eval): the type the model's
// matrices are kept in while it runs. Arithmetic is float32 either way (Model::keep_matrices_in_bf16).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "model/model.h"

namespace difftx::cli {

// Adds "--weight-dtype f32|bf16" (default f32) to app, stored in value.
void add_weight_dtype_option(CLI::App* app, std::string& value);

// model_load(dir), then keep_matrices_in_bf16() when weight_dtype is "bf16".
Model load_for_inference(const std::string& dir, const std::string& weight_dtype);

}  // namespace difftx::cli
