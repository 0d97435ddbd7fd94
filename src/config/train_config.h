// The keys of an axolotl YAML config that `difftx train` and `difftx evaluate` act on, typed, with
// axolotl's / transformers' defaults. Keys difftx recognises but does not act on (fp16/tf32,
// attention backends, logging services, distributed settings) are reported once as ignored; any
// other key is reported as unknown (a warning naming it); a wrong type is an error naming the key
// and the expected type. `adapter: lora` trains LoRA adapters (model/lora.h); qlora is an error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/axolotl_yaml.h"

namespace difftx {

enum class DatasetType { alpaca, completion, chat_template };
enum class LrSchedule { constant, linear, cosine };
// axolotl's bf16 key: off (float32 throughout), on (bf16 products with float32 accumulation and
// float32 master weights and AdamW state: PyTorch autocast), auto (on where the CPU has native
// bf16 products).
enum class Bf16Mode { off, on, auto_ };

struct DatasetSpec {
  std::string path;                 // a local .json / .jsonl / .txt file, or a directory of them
  DatasetType type = DatasetType::alpaca;
  std::string field = "text";       // completion: the text field
  std::string field_messages = "messages";  // chat_template: the list of messages
  std::string message_field_role = "role", message_field_content = "content";
};

struct TrainConfig {
  std::filesystem::path yaml_path;
  std::string base_model;
  std::string tokenizer_config;     // a tokenizer directory; default base_model
  std::vector<DatasetSpec> datasets;
  std::vector<DatasetSpec> test_datasets;  // axolotl's held-out evaluation datasets (instead of val_set_size)
  double val_set_size = 0.0;        // < 1: fraction of the samples; >= 1: number of samples
  int64_t sequence_len = 2048;
  bool sample_packing = false;
  bool pad_to_sequence_len = false;
  bool train_on_inputs = false;
  std::string chat_template = "chatml";

  int64_t micro_batch_size = 1;
  int64_t gradient_accumulation_steps = 1;
  double num_epochs = 1.0;
  int64_t max_steps = 0;            // > 0 overrides num_epochs
  double learning_rate = 5e-5;
  LrSchedule lr_scheduler = LrSchedule::cosine;
  int64_t warmup_steps = -1;        // -1: from warmup_ratio
  double warmup_ratio = 0.0;
  std::string optimizer = "adamw_torch";
  double weight_decay = 0.0, adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  uint64_t seed = 42;
  Bf16Mode bf16 = Bf16Mode::off;
  // axolotl's deepspeed key (a DeepSpeed JSON config): its ZeRO stage, 0 or 1. 1: with several
  // ranks, each keeps the AdamW state of its shard only (ZeRO-1); alone it changes nothing.
  int zero_stage = 0;
  // axolotl's gradient_checkpointing: keep only each decoder layer's input in the forward and
  // recompute its activations in the backward (bit-identical gradients, ~1/3 more compute).
  bool gradient_checkpointing = false;
  // axolotl's use_tensorboard: every metric of metrics.jsonl also as TensorBoard scalars in
  // output_dir/runs/ (io/event_file.h).
  bool use_tensorboard = false;
  // adapter: lora, with axolotl's keys (PEFT's defaults where axolotl has none): lora_r, lora_alpha,
  // lora_dropout, lora_target_modules (or lora_target_linear: true -> {"all-linear"}),
  // lora_modules_to_save, peft_use_rslora, lora_model_dir (continue from an adapter); and difftx's
  // lora_train_diff_params (model/lora.h's LoraTrainSpec).
  bool lora = false;
  int64_t lora_r = 8;
  double lora_alpha = 8, lora_dropout = 0;
  std::vector<std::string> lora_target_modules, lora_modules_to_save;
  bool peft_use_rslora = false;
  bool lora_train_diff_params = true;
  std::string lora_model_dir;

  int64_t logging_steps = 1;
  int64_t eval_steps = 0;           // 0: from evals_per_epoch (or once per epoch when validating)
  int64_t evals_per_epoch = 0;
  int64_t save_steps = 0;           // 0: from saves_per_epoch (or once per epoch)
  int64_t saves_per_epoch = 0;
  int64_t save_total_limit = 0;     // 0: keep every checkpoint
  std::string output_dir = "./model-out";
  std::string resume_from_checkpoint;
  std::vector<std::pair<std::string, std::string>> special_tokens;

  // The diff-transformer plugin (spec §6).
  bool diff_attention = false;
  int64_t diff_attn_log_every = 100;
  int64_t diff_attn_num_monitor_layers = 3;
  int64_t diff_attn_warmup_steps = 0;  // 0: none (mix = 1 throughout)

  std::vector<std::string> ignored_keys;  // recognised, not acted on
  std::vector<std::string> unknown_keys;
};

// Reads and validates the config. Throws FileError / ConfigError naming the file and key.
TrainConfig train_config_load(const std::filesystem::path& path);

}  // namespace difftx
