// Incremental decoding for generation: feed ids one at a time, get text as soon as it is complete.
//
// Each step decodes a short window of recent ids and returns what the new id added, holding text
// back while it ends in U+FFFD (a UTF-8 character split across tokens, or byte tokens not yet
// complete). Decoders that look at the first token or the ends of the text (Strip, Metaspace) see
// the window the same way for the prefix and the extended text, so the pieces concatenate to
// exactly Tokenizer::decode(all ids), finish() included. A window whose context decodes to nothing
// keeps older context (else Strip "start": 2 after a lone space would strip into the new text).
// Cost per step: O(window), not O(ids so far).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace difftx {

class DecodeStream {
 public:
  explicit DecodeStream(Tokenizer tokenizer, DecodeOptions options = {});

  // Sets the text already shown (a prompt) as left context: the next ids decode as they do after
  // it, e.g. SentencePiece's "▁the" gives " the", not the "the" that starts a text. Keeps the
  // last ids only (enough for a word and a character, more while they decode to nothing); throws
  // TextError for an unknown id.
  void prime(std::span<const int32_t> ids);
  // Adds one id; returns the text it completes (often empty). Throws TextError for an unknown id.
  std::string step(int32_t id);
  // Returns the text still held back (e.g. an incomplete character, as U+FFFD) and resets.
  std::string finish();

 private:
  void check_id(int32_t id) const;

  Tokenizer tokenizer_;
  DecodeOptions options_;
  std::vector<int32_t> ids_;  // ids from the start of the window
  size_t read_ = 0;           // ids_[0, read_) decode to `prefix_`, already returned
  std::string prefix_;
};

}  // namespace difftx
