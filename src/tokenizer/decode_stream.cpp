#include "tokenizer/decode_stream.h"

namespace difftx {

namespace {

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

DecodeStream::DecodeStream(Tokenizer tokenizer, DecodeOptions options)
    : tokenizer_(std::move(tokenizer)), options_(options) {}

void DecodeStream::prime(std::span<const int32_t> ids) {
  constexpr size_t kContext = 8;
  const size_t from = ids.size() > kContext ? ids.size() - kContext : 0;
  for (size_t i = from; i < ids.size(); ++i)
    if (!tokenizer_.id_to_token(ids[i]))
      fail<TextError>("id {} is not in the vocabulary of {} (ids 0..{})", ids[i], tokenizer_.label(),
                      tokenizer_.vocab_size() - 1);
  ids_.assign(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end());
  read_ = ids_.size();
  prefix_ = tokenizer_.decode(ids_, options_);
}

std::string DecodeStream::step(int32_t id) {
  if (!tokenizer_.id_to_token(id))
    fail<TextError>("id {} is not in the vocabulary of {} (ids 0..{})", id, tokenizer_.label(), tokenizer_.vocab_size() - 1);
  ids_.push_back(id);
  std::string text = tokenizer_.decode(ids_, options_);
  if (text.size() <= prefix_.size() || ends_with_replacement(text) || text.compare(0, prefix_.size(), prefix_) != 0)
    return {};
  std::string added = text.substr(prefix_.size());
  // Keep the ids decoded since the previous output as left context for the next window.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(read_));
  read_ = ids_.size();
  prefix_ = tokenizer_.decode(ids_, options_);
  return added;
}

std::string DecodeStream::finish() {
  std::string rest;
  if (read_ < ids_.size()) {
    std::string text = tokenizer_.decode(ids_, options_);
    if (text.compare(0, prefix_.size(), prefix_) == 0) rest = text.substr(prefix_.size());
  }
  ids_.clear();
  read_ = 0;
  prefix_.clear();
  return rest;
}

}  // namespace difftx
