// `adapter: lora` in a training run: the model's LoRA set-up from the config's keys (a new adapter,
// lora_model_dir to continue from, or a checkpoint to resume), as the trainer needs it.
#pragma once

#include <filesystem>
#include <string>

#include "config/train_config.h"
#include "model/model.h"

namespace difftx {

// Starts LoRA training on `model` (Model::train_lora): the table from the config's keys and new
// adapters (A from config.seed, B zero), or, from `resume` (a checkpoint directory) or else
// config.lora_model_dir, that adapter's rank, alpha, targets and values (its config wins over the
// YAML's lora_r / lora_alpha / targets, which are logged when they differ). Returns a line for the
// log. ConfigError / FileError / ShapeError name the key or file.
std::string lora_run_setup(Model& model, const TrainConfig& config, const std::filesystem::path& resume);

}  // namespace difftx
