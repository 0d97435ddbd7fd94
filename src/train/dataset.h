// Training samples from the datasets of an axolotl config, tokenized as axolotl tokenizes them:
//   alpaca      prompt = axolotl's Alpaca text ("Below is an instruction that describes a task...",
//               with or without "### Input:"), encoded with the tokenizer's special tokens (BOS)
//               and cut at sequence_len; the output encoded separately, BOS stripped, EOS added;
//               labels: the output (and the prompt too with train_on_inputs).
//   completion  the text field, with special tokens and EOS, cut at 64 * sequence_len, then split
//               into pieces of sequence_len tokens; every token is trained.
//   chat_template  the messages rendered with the built-in chat format (chat_template key),
//               encoded as is; labels: the assistant turns (every token with train_on_inputs).
// Samples longer than sequence_len are dropped (axolotl's drop_long_seq), as are samples without
// a trained token; both are counted and reported.
#pragma once

#include <cstdint>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "config/train_config.h"
#include "tokenizer/tokenizer.h"

namespace difftx {

inline constexpr const char* kAlpacaPromptInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. Write a "
    "response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
    "### Response:\n";
inline constexpr const char* kAlpacaPromptNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n";

struct Sample {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // same length; kIgnoreIndex where not trained
};

struct DatasetReport {
  int64_t records = 0;       // read from the files
  int64_t samples = 0;       // kept
  int64_t dropped_long = 0;  // longer than sequence_len
  int64_t dropped_untrained = 0;  // no trained token (e.g. empty output)
  int64_t tokens = 0;        // in kept samples
  DroppedText dropped;       // characters the tokenizer dropped (no token, no unk, no byte fallback)
};

// The axolotl Alpaca prompt text for one record.
std::string alpaca_prompt(const std::string& instruction, const std::string& input);

// Reads and tokenizes every dataset of `specs` (config.datasets or config.test_datasets), adding
// to `report`. Throws FileError / ConfigError / TextError naming the file, the record (line or
// index) and the field at fault.
std::vector<Sample> load_samples(const TrainConfig& config, std::span<const DatasetSpec> specs,
                                 const Tokenizer& tokenizer, DatasetReport& report);

// Splits off val_set_size samples (a fraction when < 1, a count otherwise) after shuffling with
// the seed: returns the validation samples and leaves the training ones in `samples`. Throws
// ConfigError, naming `config` (the YAML file), when no training sample would be left.
std::vector<Sample> split_validation(std::vector<Sample>& samples, double val_set_size, uint64_t seed,
                                     std::string_view config);

}  // namespace difftx
