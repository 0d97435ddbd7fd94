// The options every inference command (forward, generate, eval) shares: where the model runs
// (--device cpu|cuda[:N]) and the type its matrices are kept in there (--weight-dtype).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "model/model.h"

namespace difftx::cli {

struct InferenceOptions {
  std::string device = "cpu";
  std::string weight_dtype = "auto";  // auto: f32 on the CPU, bf16 on a GPU

  // "f32" or "bf16": what auto means on this device.
  std::string resolved_weight_dtype() const;
};

// Adds --device and --weight-dtype to app.
void add_inference_options(CLI::App* app, InferenceOptions& options);

// model_load(dir); the matrices kept in bf16 when the weight dtype is bf16; then the model placed
// on the device. On a GPU, bf16 also selects bfloat16 tensor-core arithmetic (MathMode::bf16) and
// f32 exact float32 arithmetic; on the CPU the arithmetic is float32 either way.
// Throws DeviceError (exit 2) when the device is not available, naming why.
Model load_for_inference(const std::string& dir, const InferenceOptions& options);

}  // namespace difftx::cli
