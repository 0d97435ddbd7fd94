#include "cli/weight_dtype.h"

#include "model/checkpoint_io.h"

namespace difftx::cli {

void add_weight_dtype_option(CLI::App* app, std::string& value) {
  value = "f32";
  app->add_option("--weight-dtype", value,
                  "Keep the matrices in memory as f32 or bf16 (half the memory, faster decoding; arithmetic stays "
                  "float32; exact for a BF16 checkpoint)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
}

Model load_for_inference(const std::string& dir, const std::string& weight_dtype) {
  Model model = model_load(dir);
  if (weight_dtype == "bf16") model.keep_matrices_in_bf16();
  return model;
}

}  // namespace difftx::cli
