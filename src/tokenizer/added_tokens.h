// tokenizer.json "added_tokens": strings that become one id each, found in the text before the
// normalizer/pre-tokenizer/model pipeline runs (tokenizers/src/tokenizer/added_vocabulary.rs).
//
// Matching is leftmost-longest over all tokens of a set, scanning left to right; after a match
// (kept or discarded) the scan resumes at its end. Per token:
//   special      skipped when the caller does not allow special tokens in text (parse_special off);
//                also what decode's skip_special_tokens removes
//   single_word  kept only when neither neighbour character is a word character (Rust regex \w)
//   lstrip       the match extends left over White_Space (not into the previous match)
//   rstrip       the match extends right over White_Space
//   normalized   false: matched in the raw text (first pass); true: matched in each normalized piece
//                against the token's own normalized form (second pass)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_ref.h"
#include "tokenizer/model_bpe.h"
#include "tokenizer/normalizers.h"

namespace difftx::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// A part of the text: an added token (id >= 0) or text for the pipeline (id == -1).
struct Segment {
  uint32_t begin = 0, end = 0;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // Reads the "added_tokens" array. Each id must be unique and agree with model.vocab when the
  // content is in it; contents must be unique and non-empty. Throws ConfigError naming the entry.
  static AddedVocabulary from_json(const JsonRef& list, const BpeModel& model, const Normalizer* normalizer);

  // Splits `text` on the tokens of one set (normalized == false: the raw-text set; true: the
  // normalized set) and appends the segments, covering the text in order. Empty text segments
  // are not appended.
  void split(std::string_view text, bool normalized_set, bool parse_special, std::vector<Segment>& out) const;
  bool has_tokens(bool normalized_set) const { return !trie_[normalized_set ? 1 : 0].nodes.empty(); }

  const AddedToken* find(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into tokens_ of the token ending here
  };
  struct Trie {
    std::vector<Node> nodes;  // nodes[0] is the root when not empty
    bool first_byte[256] = {};
    void insert(std::string_view pattern, int32_t token);
    // Longest pattern starting at `pos`: (token index, length) or (-1, 0).
    std::pair<int32_t, size_t> longest_at(std::string_view text, size_t pos) const;
  };
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, int32_t> by_content_;
  Trie trie_[2];
};

}  // namespace difftx::tok
