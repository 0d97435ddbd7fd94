// What a training run finds in its output_dir before it starts: the files of an earlier run
// (final model, metrics.jsonl, checkpoints, adapters, event files) make a new run refuse without
// --overwrite; with --overwrite they are moved aside into output_dir/.overwritten-run and deleted
// only when the new run commits its first output (a checkpoint or the final model), so a new run
// that fails or is killed before that leaves the earlier run recoverable.
#pragma once

#include <filesystem>
#include <vector>

namespace difftx {

inline constexpr const char* kOverwrittenRunDir = ".overwritten-run";

// The entries of out_dir that a training run writes: checkpoint-N, metrics.jsonl, config.json,
// model weights, tokenizer files, adapter_config.json / adapter_model.safetensors, runs/.
std::vector<std::filesystem::path> earlier_run_entries(const std::filesystem::path& out_dir);

class EarlierRun {
 public:
  // Refuses with FileError (before anything is moved) when out_dir holds an earlier run, or a run
  // set aside by an --overwrite that never committed, and `overwrite` is false. With `overwrite`:
  // moves the earlier run's entries into out_dir/.overwritten-run (finishing a move that a killed
  // process left half done). When .overwritten-run is already complete, the entries beside it come
  // from a run that never committed anything (only metrics.jsonl and the like), and are deleted
  // instead; if a checkpoint or model is among them, that run committed after the set-aside one
  // (resumed, or killed before deleting it): the set-aside run is deleted and this one set aside.
  EarlierRun(const std::filesystem::path& out_dir, bool overwrite);
  // The new run has committed an output: deletes .overwritten-run (once; later calls do nothing).
  void discard();
  // out_dir/.overwritten-run while it holds the earlier run, else empty.
  const std::filesystem::path& aside() const { return aside_; }

 private:
  std::filesystem::path aside_;
};

}  // namespace difftx
