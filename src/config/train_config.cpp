#include "config/train_config.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "config/model_keys.h"
#include "io/json_file.h"

namespace difftx {

namespace {

// axolotl keys difftx recognises but does not act on.
const std::set<std::string>& ignored_keys() {
  static const std::set<std::string> keys = {
      "fp16", "tf32", "float16", "bfloat16", "attn_implementation", "flash_attention", "sdp_attention",
      "xformers_attention", "flex_attention", "sage_attention", "s2_attention", "eager_attention",
      "flash_attn_cross_entropy", "flash_attn_rms_norm", "flash_attn_fuse_qkv", "flash_attn_fuse_mlp",
      "gradient_checkpointing_kwargs", "wandb_project", "wandb_entity", "wandb_watch",
      "wandb_name", "wandb_run_id", "wandb_log_model", "wandb_mode", "mlflow_tracking_uri", "mlflow_experiment_name",
      "load_in_8bit", "load_in_4bit", "strict", "dataset_prepared_path", "early_stopping_patience",
      "local_rank", "fsdp", "fsdp_config", "model_type", "tokenizer_type", "trust_remote_code",
      "group_by_length", "hub_model_id", "hub_strategy", "push_dataset_to_hub", "debug", "ddp_timeout",
      "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "torch_compile", "torch_compile_backend", "eval_sample_packing",
      "remove_unused_columns", "dataset_processes", "dataloader_num_workers", "dataloader_pin_memory",
      "dataloader_prefetch_factor", "is_llama_derived_model", "is_mistral_derived_model", "is_qwen_derived_model",
      "eval_table_size", "eval_max_new_tokens", "do_causal_lm_eval", "special_tokens_fix", "auto_resume_from_checkpoints",
      "save_safetensors", "shuffle_merged_datasets", "xformers", "seed_dataloader"};
  return keys;
}

const std::set<std::string>& used_keys() {
  static const std::set<std::string> keys = {
      "base_model", "tokenizer_config", "datasets", "test_datasets", "val_set_size", "sequence_len", "sample_packing",
      "pad_to_sequence_len", "train_on_inputs", "chat_template", "micro_batch_size", "gradient_accumulation_steps",
      "num_epochs", "max_steps", "learning_rate", "lr_scheduler", "warmup_steps", "warmup_ratio", "optimizer",
      "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "seed", "logging_steps",
      "eval_steps", "evals_per_epoch", "save_steps", "saves_per_epoch", "save_total_limit", "output_dir",
      "resume_from_checkpoint", "special_tokens", "diff_attention", "diff_attn_log_every",
      "diff_attn_num_monitor_layers", "diff_attn_warmup_steps", "plugins", "adapter", "bf16", "deepspeed",
      "gradient_checkpointing", "use_tensorboard", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_target_linear",
      "lora_modules_to_save", "peft_use_rslora", "lora_model_dir", "lora_train_diff_params"};
  return keys;
}

std::string string_field(const YAML::Node& item, const std::string& key, const std::string& where,
                         const std::string& fallback) {
  YAML::Node n = item[key];
  if (!n || n.IsNull()) return fallback;
  if (!n.IsScalar()) fail<ConfigError>("{}.{} must be a string", where, key);
  return n.Scalar();
}

void positive(const AxolotlYaml& y, const char* key, int64_t value, int64_t min = 1) {
  if (value < min) fail<ConfigError>("{}: key \"{}\" must be at least {}, got {}", y.path.string(), key, min, value);
}

// A key holding a list of names (or one name).
std::vector<std::string> name_list(const AxolotlYaml& y, const char* key) {
  const YAML::Node n = y.root[key];
  if (!n || n.IsNull()) return {};
  if (n.IsScalar()) return {n.Scalar()};
  std::vector<std::string> out;
  if (n.IsSequence())
    for (const YAML::Node& e : n) {
      if (!e.IsScalar()) break;
      out.push_back(e.Scalar());
    }
  if (!n.IsSequence() || out.size() != n.size())
    fail<ConfigError>("{}: key \"{}\" must be a list of module names", y.path.string(), key);
  return out;
}

// adapter and the LoRA keys.
void read_lora_keys(const AxolotlYaml& y, TrainConfig& c) {
  const std::string label = y.path.string();
  const std::string adapter = y.string("adapter").value_or("");
  if (adapter.empty()) {  // axolotl ignores them then too: said once, as for the other ignored keys
    for (const auto& kv : y.root)
      if (const std::string key = kv.first.as<std::string>(); key.starts_with("lora_") || key == "peft_use_rslora")
        c.ignored_keys.push_back(key + " (without adapter: lora)");
    return;
  }
  if (adapter == "qlora")
    fail<ConfigError>("{}: adapter \"qlora\": 4-bit quantised base weights are not supported; use adapter: lora "
                      "(with gradient_checkpointing: true for memory)", label);
  if (adapter != "lora") fail<ConfigError>("{}: adapter \"{}\": expected lora", label, adapter);
  c.lora = true;
  c.lora_r = y.integer("lora_r").value_or(8);
  positive(y, "lora_r", c.lora_r);
  c.lora_alpha = y.number("lora_alpha").value_or(8.0);
  if (!std::isfinite(c.lora_alpha) || std::abs(c.lora_alpha) > 1e6)
    fail<ConfigError>("{}: key \"lora_alpha\" must be a finite number of at most 1e6 in size", label);
  c.lora_dropout = y.number("lora_dropout").value_or(0.0);
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1))
    fail<ConfigError>("{}: key \"lora_dropout\" must be in [0, 1), got {}", label, c.lora_dropout);
  c.lora_target_modules = name_list(y, "lora_target_modules");
  if (y.boolean("lora_target_linear").value_or(false)) {
    if (!c.lora_target_modules.empty())
      fail<ConfigError>("{}: keys \"lora_target_linear\" and \"lora_target_modules\" both choose the targets; keep one",
                        label);
    c.lora_target_modules = {"all-linear"};
  }
  if (c.lora_target_modules.empty() && !y.string("lora_model_dir"))
    fail<ConfigError>("{}: adapter: lora needs lora_target_modules (e.g. [q_proj, v_proj]) or lora_target_linear: true",
                      label);
  c.lora_modules_to_save = name_list(y, "lora_modules_to_save");
  c.peft_use_rslora = y.boolean("peft_use_rslora").value_or(false);
  c.lora_train_diff_params = y.boolean("lora_train_diff_params").value_or(true);
  c.lora_model_dir = y.string("lora_model_dir").value_or("");
}

// A list of datasets (the "datasets" or "test_datasets" key); unrecognised item keys are added to
// `unknown` as "KEY[i].item_key".
std::vector<DatasetSpec> dataset_list(const AxolotlYaml& y, const std::string& list_key,
                                      std::vector<std::string>& unknown) {
  const std::string label = y.path.string();
  std::vector<DatasetSpec> out;
  YAML::Node datasets = y.root[list_key];
  if (!datasets || datasets.IsNull()) return out;
  if (!datasets.IsSequence()) fail<ConfigError>("{}: key \"{}\" must be a list", label, list_key);
  for (size_t i = 0; i < datasets.size(); ++i) {
    const YAML::Node item = datasets[i];
    const std::string where = fmt::format("{}: {}[{}]", label, list_key, i);
    if (!item.IsMap()) fail<ConfigError>("{} must be a mapping with path and type", where);
    DatasetSpec d;
    d.path = string_field(item, "path", where, "");
    if (d.path.empty()) fail<ConfigError>("{}.path is missing", where);
    const std::string type = string_field(item, "type", where, "");
    if (type == "alpaca") d.type = DatasetType::alpaca;
    else if (type == "completion") d.type = DatasetType::completion;
    else if (type == "chat_template") d.type = DatasetType::chat_template;
    else
      fail<ConfigError>("{}.type \"{}\" is not supported (supported: alpaca, completion, chat_template)", where, type);
    d.field = string_field(item, "field", where, "text");
    d.field_messages = string_field(item, "field_messages", where, "messages");
    d.message_field_role = string_field(item, "message_field_role", where, "role");
    d.message_field_content = string_field(item, "message_field_content", where, "content");
    for (const auto& kv : item) {
      const std::string k = kv.first.as<std::string>();
      static const std::set<std::string> known = {"path", "type", "field", "field_messages", "message_field_role",
                                                  "message_field_content", "split", "name", "ds_type", "data_files"};
      if (!known.count(k)) unknown.push_back(fmt::format("{}[{}].{}", list_key, i, k));
    }
    out.push_back(d);
  }
  return out;
}

// The ZeRO stage of axolotl's `deepspeed:` key: the JSON file's zero_optimization.stage (a path
// from the current directory, as axolotl reads it); a file that is not there but is named as
// axolotl's bundled deepspeed_configs/zero<N>*.json means stage N. difftx does stage 1 (AdamW state
// sharded); 2 and 3 are refused rather than run as something else.
int zero_stage_of(const std::string& label, const std::string& path) {
  int stage = -1;
  const std::filesystem::path file(path);
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    if (!std::filesystem::is_regular_file(file, ec))
      fail<ConfigError>("{}: key \"deepspeed\": {} is not a file (a DeepSpeed JSON config)", label, path);
    const ordered_json j = json_read_file(file);
    try {
      stage = j.contains("zero_optimization") ? j["zero_optimization"].value("stage", 0) : 0;
    } catch (const ordered_json::exception& e) {
      fail<ConfigError>("{}: deepspeed config {}: zero_optimization.stage must be a number ({})", label, path, e.what());
    }
  } else {
    const std::string name = file.filename().string();
    if (name.size() > 4 && name.rfind("zero", 0) == 0 && std::isdigit(static_cast<unsigned char>(name[4])))
      stage = name[4] - '0';
    else
      fail<ConfigError>("{}: key \"deepspeed\": {} does not exist (a DeepSpeed JSON config, or axolotl's "
                        "deepspeed_configs/zero1.json)",
                        label, path);
  }
  if (stage == 2 || stage == 3)
    fail<ConfigError>("{}: key \"deepspeed\": ZeRO stage {} (sharded {}) is not supported; difftx shards the AdamW "
                      "state only: use zero1.json",
                      label, stage, stage == 2 ? "gradients" : "gradients and parameters");
  if (stage < 0 || stage > 3)
    fail<ConfigError>("{}: key \"deepspeed\": zero_optimization.stage {} is not 0-3", label, stage);
  return stage;
}

}  // namespace

TrainConfig train_config_load(const std::filesystem::path& path) {
  AxolotlYaml y = axolotl_yaml_load(path);
  const std::string label = path.string();
  TrainConfig c;
  c.yaml_path = path;

  for (const auto& kv : y.root) {
    const std::string key = kv.first.as<std::string>();
    if (ignored_keys().count(key)) c.ignored_keys.push_back(key);
    else if (!used_keys().count(key)) c.unknown_keys.push_back(key);
  }
  read_lora_keys(y, c);

  ModelKeys model_keys = model_keys_read(y);
  c.base_model = std::move(model_keys.base_model);
  c.tokenizer_config = std::move(model_keys.tokenizer_config);
  c.special_tokens = std::move(model_keys.special_tokens);

  c.datasets = dataset_list(y, "datasets", c.unknown_keys);
  c.test_datasets = dataset_list(y, "test_datasets", c.unknown_keys);

  c.val_set_size = y.number("val_set_size").value_or(0.0);
  if (c.val_set_size < 0 || !std::isfinite(c.val_set_size))
    fail<ConfigError>("{}: key \"val_set_size\" must be >= 0", label);
  if (!c.test_datasets.empty() && c.val_set_size > 0)
    fail<ConfigError>("{}: keys \"test_datasets\" and \"val_set_size\" both choose the validation samples; keep one",
                      label);
  c.sequence_len = y.integer("sequence_len").value_or(2048);
  positive(y, "sequence_len", c.sequence_len, 2);
  c.sample_packing = y.boolean("sample_packing").value_or(false);
  c.pad_to_sequence_len = y.boolean("pad_to_sequence_len").value_or(false);
  c.train_on_inputs = y.boolean("train_on_inputs").value_or(false);
  // axolotl also takes "offload" (activations to host memory) and "unsloth" (its offloading
  // variant): both are ways to hold fewer activations on a GPU; here they mean recomputation.
  if (const YAML::Node g = y.root["gradient_checkpointing"];
      g && g.IsScalar() && (g.Scalar() == "offload" || g.Scalar() == "unsloth"))
    c.gradient_checkpointing = true;
  else
    c.gradient_checkpointing = y.boolean("gradient_checkpointing").value_or(false);
  c.use_tensorboard = y.boolean("use_tensorboard").value_or(false);
  c.chat_template = y.string("chat_template").value_or("chatml");

  if (const YAML::Node b = y.root["bf16"]; b && !b.IsNull()) {
    bool on = false;
    if (b.IsScalar() && b.Scalar() == "auto") c.bf16 = Bf16Mode::auto_;
    else if (b.IsScalar() && YAML::convert<bool>::decode(b, on)) c.bf16 = on ? Bf16Mode::on : Bf16Mode::off;
    else if (b.IsScalar() && b.Scalar() == "full")
      fail<ConfigError>("{}: key \"bf16\": \"full\" (bfloat16 weights and optimizer state) is not supported; difftx "
                        "trains with float32 master weights: use true or auto",
                        label);
    else
      fail<ConfigError>("{}: key \"bf16\" must be true, false or auto, got {}", label,
                        b.IsScalar() ? "\"" + b.Scalar() + "\"" : std::string("a ") + (b.IsSequence() ? "list" : "mapping"));
  }

  if (auto ds = y.string("deepspeed"); ds && !ds->empty()) c.zero_stage = zero_stage_of(label, *ds);

  c.micro_batch_size = y.integer("micro_batch_size").value_or(1);
  positive(y, "micro_batch_size", c.micro_batch_size);
  c.gradient_accumulation_steps = y.integer("gradient_accumulation_steps").value_or(1);
  positive(y, "gradient_accumulation_steps", c.gradient_accumulation_steps);
  c.num_epochs = y.number("num_epochs").value_or(1.0);
  if (!(c.num_epochs > 0)) fail<ConfigError>("{}: key \"num_epochs\" must be positive", label);
  c.max_steps = y.integer("max_steps").value_or(0);
  positive(y, "max_steps", c.max_steps, 0);
  c.learning_rate = y.number("learning_rate").value_or(5e-5);
  if (!(c.learning_rate >= 0)) fail<ConfigError>("{}: key \"learning_rate\" must be >= 0", label);
  const std::string sched = y.string("lr_scheduler").value_or("cosine");
  if (sched == "cosine") c.lr_scheduler = LrSchedule::cosine;
  else if (sched == "linear") c.lr_scheduler = LrSchedule::linear;
  else if (sched == "constant" || sched == "constant_with_warmup") c.lr_scheduler = LrSchedule::constant;
  else fail<ConfigError>("{}: lr_scheduler \"{}\" is not supported (supported: cosine, linear, constant)", label, sched);
  c.warmup_steps = y.integer("warmup_steps").value_or(-1);
  c.warmup_ratio = y.number("warmup_ratio").value_or(0.0);
  if (c.warmup_ratio < 0 || c.warmup_ratio > 1) fail<ConfigError>("{}: key \"warmup_ratio\" must be in [0, 1]", label);
  c.optimizer = y.string("optimizer").value_or("adamw_torch");
  if (c.optimizer.rfind("adamw", 0) != 0)
    fail<ConfigError>("{}: optimizer \"{}\" is not supported (the adamw variants all run as AdamW)", label, c.optimizer);
  c.weight_decay = y.number("weight_decay").value_or(0.0);
  c.adam_beta1 = y.number("adam_beta1").value_or(0.9);
  c.adam_beta2 = y.number("adam_beta2").value_or(0.999);
  c.adam_epsilon = y.number("adam_epsilon").value_or(1e-8);
  for (auto [key, v] : {std::pair{"adam_beta1", c.adam_beta1}, {"adam_beta2", c.adam_beta2}})
    if (!(v >= 0 && v < 1)) fail<ConfigError>("{}: key \"{}\" must be in [0, 1)", label, key);
  c.max_grad_norm = y.number("max_grad_norm").value_or(1.0);
  const int64_t seed = y.integer("seed").value_or(42);
  positive(y, "seed", seed, 0);
  c.seed = static_cast<uint64_t>(seed);

  c.logging_steps = y.integer("logging_steps").value_or(1);
  positive(y, "logging_steps", c.logging_steps);
  c.eval_steps = y.integer("eval_steps").value_or(0);
  c.evals_per_epoch = y.integer("evals_per_epoch").value_or(0);
  c.save_steps = y.integer("save_steps").value_or(0);
  c.saves_per_epoch = y.integer("saves_per_epoch").value_or(0);
  c.save_total_limit = y.integer("save_total_limit").value_or(0);
  for (auto [key, v] : {std::pair{"eval_steps", c.eval_steps}, {"evals_per_epoch", c.evals_per_epoch},
                        {"save_steps", c.save_steps}, {"saves_per_epoch", c.saves_per_epoch},
                        {"save_total_limit", c.save_total_limit}})
    positive(y, key, v, 0);
  c.output_dir = y.string("output_dir").value_or("./model-out");
  if (c.output_dir.empty()) fail<ConfigError>("{}: key \"output_dir\" is empty", label);
  c.resume_from_checkpoint = y.string("resume_from_checkpoint").value_or("");


  c.diff_attention = y.boolean("diff_attention").value_or(false);
  c.diff_attn_log_every = y.integer("diff_attn_log_every").value_or(100);
  positive(y, "diff_attn_log_every", c.diff_attn_log_every);
  c.diff_attn_num_monitor_layers = y.integer("diff_attn_num_monitor_layers").value_or(3);
  positive(y, "diff_attn_num_monitor_layers", c.diff_attn_num_monitor_layers);
  c.diff_attn_warmup_steps = y.integer("diff_attn_warmup_steps").value_or(0);
  positive(y, "diff_attn_warmup_steps", c.diff_attn_warmup_steps, 0);
  return c;
}

}  // namespace difftx
