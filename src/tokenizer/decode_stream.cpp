#include "tokenizer/decode_stream.h"

namespace difftx {

namespace {

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

DecodeStream::DecodeStream(Tokenizer tokenizer, DecodeOptions options)
    : tokenizer_(std::move(tokenizer)), options_(options) {}

void DecodeStream::check_id(int32_t id) const {
  if (!tokenizer_.id_to_token(id))
    fail<TextError>("id {} is not in the vocabulary of {} (ids 0..{})", id, tokenizer_.label(), tokenizer_.vocab_size() - 1);
}

void DecodeStream::prime(std::span<const int32_t> ids) {
  constexpr size_t kContext = 8;
  size_t from = ids.size();
  ids_.clear();
  prefix_.clear();
  // Take the last ids; a context that decodes to nothing (spaces a Strip decoder removes, skipped
  // special tokens) cannot anchor the next window, so widen it to the left until it decodes to text.
  while (from > 0 && (ids_.empty() || prefix_.empty())) {
    const size_t start = from > kContext ? from - kContext : 0;
    for (size_t i = start; i < from; ++i) check_id(ids[i]);
    ids_.insert(ids_.begin(), ids.begin() + static_cast<std::ptrdiff_t>(start),
                ids.begin() + static_cast<std::ptrdiff_t>(from));
    from = start;
    prefix_ = tokenizer_.decode(ids_, options_);
  }
  read_ = ids_.size();
}

std::string DecodeStream::step(int32_t id) {
  check_id(id);
  ids_.push_back(id);
  std::string text = tokenizer_.decode(ids_, options_);
  if (text.size() <= prefix_.size() || ends_with_replacement(text) || text.compare(0, prefix_.size(), prefix_) != 0)
    return {};
  std::string added = text.substr(prefix_.size());
  // Keep the ids decoded since the previous output as left context for the next window, unless
  // they decode to nothing on their own: a Strip decoder would then also strip the start of the
  // next id's text (e.g. "start": 2 after a lone space), so the older context stays.
  std::vector<int32_t> recent(ids_.begin() + static_cast<std::ptrdiff_t>(read_), ids_.end());
  std::string recent_text = tokenizer_.decode(recent, options_);
  if (!recent_text.empty()) {
    ids_ = std::move(recent);
    prefix_ = std::move(recent_text);
  } else {
    prefix_ = std::move(text);
  }
  read_ = ids_.size();
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
