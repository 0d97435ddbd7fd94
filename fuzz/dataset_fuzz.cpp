// Dataset records: the first byte picks the type (alpaca / completion / chat_template) and the
// file form (.jsonl / .json); the rest is the file, tokenized with the real Mistral tokenizer.
#include <cstdlib>

#include "common/error.h"
#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "train/dataset.h"

int difftx_fuzz_dataset(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const difftx::Tokenizer tok = [] {
    const char* env = std::getenv("DIFFTX_SHARED");
    return difftx::Tokenizer::load(std::filesystem::path(env != nullptr ? env : DIFFTX_SHARED_DIR) /
                                   "fixtures/tokenizers/mistral");
  }();
  const difftx::DatasetType types[] = {difftx::DatasetType::alpaca, difftx::DatasetType::completion,
                                       difftx::DatasetType::chat_template};
  const std::string ext = (data[0] / 3) % 2 == 0 ? "data.jsonl" : "data.json";
  const auto path = difftx::fuzz::scratch_file(ext, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  difftx::TrainConfig c;
  c.yaml_path = path.parent_path() / "config.yml";
  c.sequence_len = 64;
  c.datasets = {difftx::DatasetSpec{path.string(), types[data[0] % 3]}};
  difftx::DatasetReport report;
  try {
    const auto samples = difftx::load_samples(c, c.datasets, tok, report);
    for (const auto& s : samples)
      if (s.ids.size() != s.labels.size() || s.ids.size() > 64) std::abort();
  } catch (const difftx::Error&) {
  }
  return 0;
}
DIFFTX_FUZZ_ENTRY(dataset)
