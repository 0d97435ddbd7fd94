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

// Rank r's fingerprints are slots kSlots r .. kSlots r + kSlots - 1 of one int64 sum (one nonzero
// term per slot, so the sum is each rank's values): the config file, the samples, the weights, the
// command, and its setup failure (0: none; else the message's fingerprint, odd).
constexpr int kSlots = 5, kFailure = 4;

std::vector<int64_t> exchange(Collective& collective, const uint64_t (&mine)[kSlots]) {
  std::vector<int64_t> all(static_cast<size_t>(collective.world_size()) * kSlots, 0);
  std::memcpy(&all[static_cast<size_t>(collective.rank()) * kSlots], mine, sizeof(mine));
  collective.all_reduce_sum(all);
  return all;
}

int64_t slot(const std::vector<int64_t>& all, int rank, int k) { return all[static_cast<size_t>(rank) * kSlots + k]; }

}  // namespace

void check_ranks_agree(Collective& collective, const TrainConfig& config, const std::vector<Sample>& train,
                       const std::vector<Sample>& val, std::span<const float> weights, const char* task,
                       std::string_view command) {
  const int world = collective.world_size();
  if (world <= 1) return;
  std::ifstream in(config.yaml_path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const uint64_t mine[kSlots] = {
      fingerprint(as_bytes_of(std::span<const char>(text))),
      samples_fingerprint(val, samples_fingerprint(train, 0xcbf29ce484222325ULL)),
      fingerprint(as_bytes_of(weights)),
      fingerprint(as_bytes_of(std::span<const char>(command))),
      0,
  };
  const std::vector<int64_t> all = exchange(collective, mine);
  std::string failed;
  for (int r = 0; r < world; ++r)
    if (slot(all, r, kFailure) != 0) failed += (failed.empty() ? "" : ", ") + std::to_string(r);
  if (!failed.empty()) throw PeerRankFailedError(fmt::format("rank {} could not start", failed));
  const char* what[kFailure] = {"config file", "training or validation samples (dataset files, tokenizer)",
                                "starting weights (base_model or the checkpoint resumed)",
                                "command (the subcommand, --max-steps, --resume-from-checkpoint, --overwrite)"};
  // "rank 1 differs from rank 0 in its config file and its samples (...); rank 2 in its weights (...)"
  std::string differ;
  for (int r = 1; r < world; ++r) {
    std::vector<const char*> parts;
    for (int k = 0; k < kFailure; ++k)
      if (slot(all, r, k) != slot(all, 0, k)) parts.push_back(what[k]);
    if (parts.empty()) continue;
    std::string list;
    for (size_t i = 0; i < parts.size(); ++i)
      list += fmt::format("{}its {}", i == 0 ? "" : i + 1 == parts.size() ? " and " : ", ", parts[i]);
    differ += differ.empty() ? fmt::format("rank {} differs from rank 0 in {}", r, list)
                             : fmt::format("; rank {} in {}", r, list);
  }
  if (!differ.empty())
    fail<RanksAgreeError>("{}: the {} ranks do not {} the same thing: {}. Every rank must read identical files (copy "
                          "them to every machine, or use a shared directory)",
                          config.yaml_path.string(), world, task, differ);
}

bool share_setup_failure(Collective& collective, std::string_view message) {
  uint64_t mine[kSlots] = {};
  mine[kFailure] = fingerprint(as_bytes_of(std::span<const char>(message))) | 1;
  const std::vector<int64_t> all = exchange(collective, mine);
  for (int r = 0; r < collective.world_size(); ++r)
    if (slot(all, r, kFailure) != slot(all, 0, kFailure)) return false;
  return true;
}

}  // namespace difftx
