#include "train/rank_agreement.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

namespace difftx {

uint64_t fingerprint(std::span<const uint8_t> bytes, uint64_t h) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * kPrime;
  }
  for (; i < bytes.size(); ++i) h = (h ^ bytes[i]) * kPrime;
  return (h ^ bytes.size()) * kPrime;
}

namespace {

template <typename T>
std::span<const uint8_t> as_bytes_of(std::span<const T> v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size_bytes()};
}

uint64_t samples_fingerprint(const std::vector<Sample>& samples, uint64_t h) {
  for (const Sample& s : samples) {
    h = fingerprint(as_bytes_of(std::span<const int32_t>(s.ids)), h);
    h = fingerprint(as_bytes_of(std::span<const int32_t>(s.labels)), h);
  }
  const uint64_t count = samples.size();
  return fingerprint(as_bytes_of(std::span<const uint64_t>(&count, 1)), h);
}

}  // namespace

void check_ranks_agree(Collective& collective, const TrainConfig& config, const std::vector<Sample>& train,
                       const std::vector<Sample>& val, std::span<const float> weights, const char* task) {
  const int world = collective.world_size(), rank = collective.rank();
  if (world <= 1) return;
  std::ifstream in(config.yaml_path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const uint64_t mine[3] = {
      fingerprint(as_bytes_of(std::span<const char>(text))),
      samples_fingerprint(val, samples_fingerprint(train, 0xcbf29ce484222325ULL)),
      fingerprint(as_bytes_of(weights)),
  };
  const char* what[3] = {"config file", "training or validation samples (dataset files, tokenizer)",
                         "starting weights (base_model or the checkpoint resumed)"};
  std::vector<int64_t> all(static_cast<size_t>(world) * 3, 0);  // rank r's fingerprints in slots 3r..3r+2
  for (int k = 0; k < 3; ++k) std::memcpy(&all[static_cast<size_t>(rank) * 3 + k], &mine[k], 8);
  collective.all_reduce_sum(all);
  std::string differ;
  for (int k = 0; k < 3; ++k) {
    std::string ranks;
    for (int r = 1; r < world; ++r)
      if (all[static_cast<size_t>(r) * 3 + k] != all[static_cast<size_t>(k)]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (!ranks.empty()) differ += fmt::format("{}the {} of rank{} {}", differ.empty() ? "" : "; ", what[k],
                                              ranks.find(',') == std::string::npos ? "" : "s", ranks);
  }
  if (!differ.empty())
    fail<RanksAgreeError>("{}: the {} ranks do not {} the same thing: {} differ{} from rank 0's. Every rank must "
                          "read identical files (copy them to every machine, or use a shared directory)",
                          config.yaml_path.string(), world, task, differ, differ.find(';') == std::string::npos ? "s" : "");
}

}  // namespace difftx
