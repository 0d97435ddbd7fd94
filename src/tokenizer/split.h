// Splitting a piece of text on matches of a pattern, with the five delimiter behaviours of
// tokenizers' NormalizedString::split (tokenizers/src/tokenizer/normalizer.rs). Shared by the
// Split, Digits, Punctuation, Whitespace, WhitespaceSplit and Metaspace pre-tokenizers.
//
// With input "the-final--countdown" split on '-':
//   removed              "the" "final" "countdown"
//   isolated             "the" "-" "final" "-" "-" "countdown"
//   merged_with_previous "the-" "final-" "-" "countdown"
//   merged_with_next     "the" "-final" "-" "-countdown"
//   contiguous           "the" "-" "final" "--" "countdown"
#pragma once

#include <string_view>
#include <vector>

#include "tokenizer/json_ref.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

// "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"; else ConfigError.
SplitBehavior split_behavior_from_json(const JsonRef& value);

// A Split/Replace pattern: {"String": "..."} (literal) or {"Regex": "..."}; else ConfigError.
Regex pattern_from_json(const JsonRef& value);

struct MatchSpan {
  uint32_t begin = 0, end = 0;
  bool is_match = false;
};

// tokenizers' Pattern::find_matches: the matches plus the gaps between them, covering all of a
// text of `size` bytes in order. `matches` must be sorted and non-overlapping. An empty text gives
// one empty non-match.
void spans_from_matches(size_t size, const std::vector<ByteSpan>& matches, std::vector<MatchSpan>& out);

// Applies `behavior` (after flipping match flags when `invert`) and appends the byte ranges of
// the pieces that are kept, empty ones included (the caller drops them, as tokenizers does).
void split_spans(const std::vector<MatchSpan>& spans, SplitBehavior behavior, bool invert, std::vector<ByteSpan>& out);

// One match per character satisfying `pred` (tokenizers' Pattern for Fn(char) -> bool).
template <class Pred>
void char_matches(std::string_view text, Pred pred, std::vector<ByteSpan>& out) {
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    char32_t cp = utf8_next(text, i);
    if (pred(cp)) out.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(i)});
  }
}

}  // namespace difftx::tok
