#include "train/run_data.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "common/interrupt.h"
#include "config/model_keys.h"
#include "model/finite_logits.h"

namespace fs = std::filesystem;

namespace difftx {


Prepared prepare_run_data(const TrainConfig& c) {
  const ModelKeyDirs dirs = model_keys_resolve({c.base_model, c.tokenizer_config, c.special_tokens}, c.yaml_path);
  Prepared p{dirs.model_dir, dirs.tokenizer_dir, Tokenizer::load(dirs.tokenizer_dir), {}, {}, {}, 0};
  for (const auto& [key, token] : c.special_tokens)
    if (!p.tokenizer.token_to_id(token))
      fail<ConfigError>("{}: special_tokens.{} \"{}\" is not in the vocabulary; adding tokens (and resizing the "
                        "embeddings) is not supported",
                        c.yaml_path.string(), key, token);
  p.train = load_samples(c, c.datasets, p.tokenizer, p.report);
  if (c.test_datasets.empty()) {
    p.val = split_validation(p.train, c.val_set_size, c.seed);
  } else {
    DatasetReport held_out;  // test_datasets: validation samples of their own, counted in the report
    p.val = load_samples(c, c.test_datasets, p.tokenizer, held_out);
    p.report.records += held_out.records;
    p.report.dropped_long += held_out.dropped_long;
    p.report.dropped_untrained += held_out.dropped_untrained;
    p.report.dropped.merge(held_out.dropped);
  }
  if (const std::string w = p.report.dropped.warning(); !w.empty()) spdlog::warn("datasets: {}", w);
  std::optional<int32_t> pad;
  for (const auto& [key, token] : c.special_tokens)
    if (key == "pad_token") pad = p.tokenizer.token_to_id(token);
  p.pad_id = pad.value_or(p.tokenizer.eos_id().value_or(0));
  return p;
}

// Each sample's positions count from 0 (packed samples too): a sample longer than the model's
// max_position_embeddings reaches positions it was never trained on.
void warn_beyond_max_positions(const Prepared& data, int64_t max_positions) {
  int64_t longer = 0;
  size_t longest = 0;
  for (const auto* set : {&data.train, &data.val})
    for (const Sample& s : *set) {
      longer += static_cast<int64_t>(s.ids.size()) > max_positions;
      longest = std::max(longest, s.ids.size());
    }
  if (longer > 0)
    spdlog::warn("{} sample(s) are longer than the model's max_position_embeddings ({}; the longest has {} tokens): "
                 "their positions past {} lie beyond what the model was trained for; lower sequence_len",
                 longer, max_positions, longest, max_positions - 1);
}

namespace {

// Mean loss per target of a set of micro-batches (no gradients); nullopt when `interruptible` and a
// stop was requested before a micro-batch (*done: the micro-batches evaluated).
std::optional<double> mean_loss_of(const Model& model, const std::vector<MicroBatch>& batches, const char* split,
                                   const ForwardOptions& options, bool interruptible, size_t* done) {
  double total = 0;
  int64_t count = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (done != nullptr) *done = i;
    if (interruptible && interrupt_requested()) return std::nullopt;
    const MicroBatch& mb = batches[i];
    if (mb.target_count == 0) continue;
    const double loss = model.loss(mb.tokens, mb.targets, options);
    if (!std::isfinite(loss))
      fail<NumericError>("the loss of micro-batch {} of {} of the {} is {}. {}", i + 1, batches.size(), split,
                         number_text(loss), non_finite_cause(model));
    total += loss;
    count += mb.target_count;
  }
  if (done != nullptr) *done = batches.size();
  return count > 0 ? total / static_cast<double>(count) : std::nan("");
}

}  // namespace

double mean_loss(const Model& model, const std::vector<MicroBatch>& batches, const char* split,
                 const ForwardOptions& options) {
  return *mean_loss_of(model, batches, split, options, false, nullptr);
}

std::optional<double> mean_loss_unless_interrupted(const Model& model, const std::vector<MicroBatch>& batches,
                                                   const char* split, const ForwardOptions& options, size_t* done) {
  return mean_loss_of(model, batches, split, options, true, done);
}

}  // namespace difftx
