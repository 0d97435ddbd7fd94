// The options every inference command (forward, generate, eval) shares: where the model runs
// (--device cpu|cuda[:N]), the type its matrices are kept in there (--weight-dtype) and the type of
// the matrix products' operands (--compute-dtype).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "model/model.h"

namespace difftx::cli {

struct InferenceOptions {
  std::string device = "cpu";
  std::string weight_dtype = "auto";   // auto: the compute dtype on the CPU, bf16 on a GPU
  std::string compute_dtype = "auto";  // auto: f32 on the CPU, the weight dtype on a GPU
  std::string lora;                    // a PEFT LoRA adapter directory applied unmerged ("": none)

  // "f32" or "bf16": what auto means on this device.
  std::string resolved_weight_dtype() const;
  std::string resolved_compute_dtype() const;
};

// Adds --device, --weight-dtype, --compute-dtype and --lora to app.
void add_inference_options(CLI::App* app, InferenceOptions& options);

// model_load(dir); a --lora adapter attached (CPU only: ConfigError on another device); the matrices kept in bf16 when the weight dtype is bf16; then the model placed
// on the device with the compute dtype's MathMode (kernels/backend.h): bf16 products with float32
// accumulation, or float32 throughout. On a GPU the two dtypes must agree (its bf16 products read
// bf16 weights). Throws DeviceError (exit 2) when the device is not available, naming why, and
// ConfigError for a combination the device cannot run.
Model load_for_inference(const std::string& dir, const InferenceOptions& options);

}  // namespace difftx::cli
