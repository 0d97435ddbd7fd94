#include "train/run_data.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "common/interrupt.h"
#include "config/model_keys.h"
#include "model/finite_logits.h"
#include "train/rank_agreement.h"

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
    p.val = split_validation(p.train, c.val_set_size, c.seed, c.yaml_path.string());
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

std::optional<double> mean_loss_over_ranks(const Model& model, const std::vector<MicroBatch>& batches,
                                           const char* split, const ForwardOptions& options, Collective& collective,
                                           bool interruptible, size_t* done) {
  // One sum: each micro-batch's loss (only its rank adds a value, so the sum is exact), then whether
  // a rank stopped on a signal, then how many micro-batches the ranks evaluated.
  const size_t n = batches.size();
  std::vector<double> shared(n + 2, 0.0);
  const int rank = collective.rank(), world = collective.world_size();
  for (size_t i = static_cast<size_t>(rank); i < n; i += static_cast<size_t>(world)) {
    if (interruptible && interrupt_requested()) {
      shared[n] = 1;
      break;
    }
    const MicroBatch& mb = batches[i];
    if (mb.target_count > 0) shared[i] = model.loss(mb.tokens, mb.targets, options);
    shared[n + 1] += 1;
    if (!std::isfinite(shared[i])) break;  // the first this rank meets; an earlier one would be another rank's
  }
  collective.all_reduce_sum(std::span<double>(shared));
  if (done != nullptr) *done = static_cast<size_t>(shared[n + 1]);
  if (shared[n] > 0) return std::nullopt;
  double total = 0;
  int64_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(shared[i]))
      fail<RanksAgreeNumericError>("the loss of micro-batch {} of {} of the {} is {}. {}", i + 1, n, split,
                                   number_text(shared[i]), non_finite_cause(model));
    total += shared[i];
    count += batches[i].target_count;
  }
  return count > 0 ? total / static_cast<double>(count) : std::nan("");
}

}  // namespace difftx
