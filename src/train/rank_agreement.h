// Data-parallel ranks must train the same thing: the same config, the same samples and the same
// starting weights. Every rank reads them itself (on one machine or several), so a file that
// differs between machines would silently train a mixture; this check compares fingerprints of
// the three over the ranks before anything is written.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "config/train_config.h"
#include "train/collective.h"
#include "train/dataset.h"

namespace difftx {

// An error every rank detects alike (from the same all-reduced values): rank 0 reports it, the
// other ranks stop quietly with the same exit status.
class RanksAgreeError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// A loss that is not finite, found alike on every rank from the summed losses (train/run_data.h):
// reported the same way.
class RanksAgreeNumericError : public NumericError {
 public:
  using NumericError::NumericError;
};

// Thrown by check_ranks_agree on the ranks whose setup went well when another rank's failed (that
// rank reports its own error): they stop quietly.
class PeerRankFailedError : public Error {
 public:
  using Error::Error;
};

// 64-bit fingerprint of bytes (FNV-1a over 8-byte words; not cryptographic: it tells files apart).
uint64_t fingerprint(std::span<const uint8_t> bytes, uint64_t seed = 0xcbf29ce484222325ULL);

// The first collective operation of a run, once each rank has read its config, samples and
// weights. Throws RanksAgreeError on every rank when some rank's config file, training/validation
// samples, starting weights or command differ from rank 0's, naming the ranks and what differs;
// throws PeerRankFailedError when a rank could not get that far (share_setup_failure).
// `task` ("train", "evaluate") names what they do in the message; `command` is the subcommand with
// the options that change what the ranks compute (mpirun's MPMD form can give each rank its own:
// `-np 1 difftx train a.yml --max-steps 2 : -np 1 difftx train a.yml --max-steps 4`).
void check_ranks_agree(Collective& collective, const TrainConfig& config, const std::vector<Sample>& train,
                       const std::vector<Sample>& val, std::span<const float> weights, const char* task,
                       std::string_view command);

// For a rank whose setup threw `message` before it reached check_ranks_agree: takes its part in that
// operation's sum, which the other ranks wait in. True when every rank failed with the same message
// (so that rank 0 alone reports it); false when some ranks got through or the messages differ (each
// rank that failed reports its own).
bool share_setup_failure(Collective& collective, std::string_view message);

}  // namespace difftx
