// How much attention the last token of a prompt pays to one part of it (`difftx attention-map
// --focus TEXT`): the measure of the README's demo, where one relevant sentence sits among
// distractors. For each shown head, the mass of the last query row on the tokens that overlap the
// first occurrence of TEXT: for a standard head its softmax map's; for a differential head A1's,
// A2's, and A1 - lambda * A2's as a share of that row's total (1 - lambda).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/attention_maps.h"
#include "tokenizer/tokenizer.h"

namespace difftx {

struct HeadFocus {
  int64_t head = 0;
  double positive = 0;    // A1 (or the softmax map) on the focus tokens; the row sums to 1
  double negative = 0;    // A2 on them (differential)
  double difference = 0;  // (A1 - lambda A2) on them / (1 - lambda) (differential; lambda of the row)
};

struct AttentionFocus {
  std::string text;             // what was looked for
  std::vector<int64_t> tokens;  // positions of the tokens overlapping it
  std::vector<HeadFocus> heads;
  HeadFocus mean;               // over the heads (head = -1)
  double uniform = 0;           // tokens.size() / T: the share a uniform map would give
};

// Throws ConfigError when `text` is empty or not in the decoded prompt (naming both).
AttentionFocus attention_focus(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, const AttentionMaps& maps,
                               const std::string& text);

}  // namespace difftx
