#include "cli/inference_options.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "model/lora.h"
#include "model/model_dir.h"

namespace difftx::cli {

std::string InferenceOptions::resolved_weight_dtype() const {
  if (weight_dtype != "auto") return weight_dtype;
  if (device != "cpu") return "bf16";
  return compute_dtype == "bf16" ? "bf16" : "f32";  // bf16 products round the weights anyway: keep them rounded
}

std::string InferenceOptions::resolved_compute_dtype() const {
  if (compute_dtype != "auto") return compute_dtype;
  return device == "cpu" ? "f32" : resolved_weight_dtype();
}

void add_inference_options(CLI::App* app, InferenceOptions& options) {
  app->add_option("--device", options.device,
                  "Where the model runs: cpu, or cuda / cuda:N (a GPU; needs a difftx built with CUDA)")
      ->capture_default_str();
  app->add_option("--weight-dtype", options.weight_dtype,
                  "Matrices kept as f32 or bf16 (half the memory, faster decoding). auto: the compute dtype on the "
                  "CPU, bf16 on a GPU. With f32 compute the arithmetic stays float32 (exact for a BF16 checkpoint)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
  app->add_option("--compute-dtype", options.compute_dtype,
                  "Operands of the matrix products: f32, or bf16 (PyTorch autocast: bf16 inputs, float32 sums and "
                  "outputs; norms, softmax and lambda stay float32). auto: f32 on the CPU, the weight dtype on a GPU. "
                  "On a CPU without native bf16 products (AVX512_BF16/AMX) bf16 warns and computes in float32")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
  app->add_option("--lora", options.lora,
                  "A LoRA adapter in PEFT's format (adapter_config.json + adapter_model.safetensors) applied "
                  "unmerged; CPU only (difftx merge-lora folds it into the weights)")
      ->check([](const std::string& dir) { return dir.empty() ? std::string("an empty path, expected an adapter directory") : std::string(); });
}

Model load_for_inference(const std::string& dir, const InferenceOptions& options) {
  const bool bf16 = options.resolved_weight_dtype() == "bf16";
  const bool bf16_math = options.resolved_compute_dtype() == "bf16";
  if (options.device != "cpu" && bf16 != bf16_math)
    fail<ConfigError>("--weight-dtype {} with --compute-dtype {} on {}: on a GPU the two must agree (its bf16 "
                      "products read bf16 weights)", options.resolved_weight_dtype(), options.resolved_compute_dtype(),
                      options.device);
  if (!options.lora.empty() && options.device != "cpu")
    fail<ConfigError>("--lora {}: adapters run unmerged on the CPU only; fold it into the weights with `difftx "
                      "merge-lora` to run on {}", options.lora, options.device);
  // The device first: a missing GPU is reported before minutes of loading.
  std::shared_ptr<Backend> backend = make_backend(options.device, bf16_math ? MathMode::bf16 : MathMode::f32);
  Model model = model_load(dir);
  if (!options.lora.empty()) {
    const LoraAdapter adapter = lora_load(options.lora, model);
    model.attach_lora(adapter);
    spdlog::info("LoRA adapter {}: {} modules, r {}, scaling {:g}{}", options.lora, adapter.modules.size(),
                 adapter.config.r, adapter.config.scaling(),
                 adapter.full_tensors.empty() ? "" : fmt::format(", {} whole tensor{}", adapter.full_tensors.size(), adapter.full_tensors.size() == 1 ? "" : "s"));
  }
  if (bf16) model.keep_matrices_in_bf16();
  model.place_on(std::move(backend));
  return model;
}

}  // namespace difftx::cli
