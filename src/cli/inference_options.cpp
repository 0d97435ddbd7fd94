#include "cli/inference_options.h"

#include "model/model_dir.h"

namespace difftx::cli {

std::string InferenceOptions::resolved_weight_dtype() const {
  if (weight_dtype != "auto") return weight_dtype;
  return device == "cpu" ? "f32" : "bf16";
}

void add_inference_options(CLI::App* app, InferenceOptions& options) {
  app->add_option("--device", options.device,
                  "Where the model runs: cpu, or cuda / cuda:N (a GPU; needs a difftx built with CUDA)")
      ->capture_default_str();
  app->add_option("--weight-dtype", options.weight_dtype,
                  "Matrices kept as f32 or bf16 (half the memory, faster decoding). auto: f32 on the CPU, bf16 on a "
                  "GPU. On the CPU the arithmetic stays float32 (exact for a BF16 checkpoint); on a GPU bf16 also "
                  "means bf16 tensor-core products with float32 accumulation, f32 float32 throughout (no TF32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
}

Model load_for_inference(const std::string& dir, const InferenceOptions& options) {
  const bool bf16 = options.resolved_weight_dtype() == "bf16";
  // The device first: a missing GPU is reported before minutes of loading.
  std::shared_ptr<Backend> backend = make_backend(options.device, bf16 ? MathMode::bf16 : MathMode::f32);
  Model model = model_load(dir);
  if (bf16) model.keep_matrices_in_bf16();
  model.place_on(std::move(backend));
  return model;
}

}  // namespace difftx::cli
