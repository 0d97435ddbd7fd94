#include "tokenizer/pre_tokenizers.h"

#include "common/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/metaspace.h"
#include "tokenizer/regex.h"
#include "tokenizer/split.h"
#include "tokenizer/utf8.h"

namespace difftx::tok {

namespace {

constexpr std::string_view kSupported =
    "Sequence, ByteLevel, Split, Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation";

void emit(PieceSink& out, std::string_view text, uint32_t begin, uint32_t end, bool at_start) {
  if (end > begin) out.piece(text.substr(begin, end - begin), at_start && begin == 0);
}

// Hands the pieces of `text` split on `matches` with `behavior` to `out`.
void emit_split(std::string_view text, bool at_start, const std::vector<ByteSpan>& matches, SplitBehavior behavior,
                bool invert, PieceSink& out) {
  std::vector<MatchSpan> spans;
  std::vector<ByteSpan> kept;
  spans_from_matches(text.size(), matches, spans);
  split_spans(spans, behavior, invert, kept);
  for (const ByteSpan& k : kept) emit(out, text, k.begin, k.end, at_start);
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::string_view text, bool at_start, PieceSink& out) const override { run(0, text, at_start, out); }

 private:
  void run(size_t k, std::string_view text, bool at_start, PieceSink& out) const {
    if (k == parts_.size()) {
      out.piece(text, at_start);
      return;
    }
    if (k + 1 == parts_.size()) {
      parts_[k]->pre_tokenize(text, at_start, out);
      return;
    }
    // Build the chain of the remaining stages on the stack: stage k feeds stage k+1, and so on.
    struct Rest final : PieceSink {
      const SequencePreTokenizer* self;
      size_t next;
      PieceSink* out;
      void piece(std::string_view t, bool s) override { self->run(next, t, s, *out); }
    } rest;
    rest.self = this;
    rest.next = k + 1;
    rest.out = &out;
    parts_[k]->pre_tokenize(text, at_start, rest);
  }
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& what)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {
    if (use_regex_) regex_ = std::make_unique<Regex>(kGpt2Pattern, what);
  }
  void pre_tokenize(std::string_view text, bool at_start, PieceSink& out) const override {
    std::string prefixed;
    if (add_prefix_space_ && text.front() != ' ') {
      prefixed.reserve(text.size() + 1);
      prefixed += ' ';
      prefixed.append(text);
      text = prefixed;
    }
    if (!use_regex_) {
      emit_mapped(text, at_start, out);
      return;
    }
    // Isolated split on the GPT-2 pattern: matches and the gaps between them are all pieces.
    struct Visitor final : MatchVisitor {
      std::string_view text;
      bool at_start;
      PieceSink* out;
      uint32_t prev = 0;
      void match(uint32_t begin, uint32_t end) override {
        if (begin > prev) emit_mapped(text.substr(prev, begin - prev), at_start && prev == 0, *out);
        emit_mapped(text.substr(begin, end - begin), at_start && begin == 0, *out);
        prev = end;
      }
    } v;
    v.text = text;
    v.at_start = at_start;
    v.out = &out;
    regex_->for_each_match(text, v);
    if (v.prev < text.size()) emit_mapped(text.substr(v.prev), at_start && v.prev == 0, out);
  }

 private:
  static void emit_mapped(std::string_view bytes, bool at_start, PieceSink& out) {
    if (bytes.empty()) return;
    char buffer[256];  // most pieces are short: map them without a heap allocation
    if (2 * bytes.size() <= sizeof(buffer)) {
      size_t n = byte_level_encode(bytes, buffer);
      out.piece(std::string_view(buffer, n), at_start);
      return;
    }
    std::string mapped;
    byte_level_encode(bytes, mapped);
    out.piece(mapped, at_start);
  }
  bool add_prefix_space_, use_regex_;
  std::unique_ptr<Regex> regex_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::string_view text, bool at_start, PieceSink& out) const override {
    const bool isolated = behavior_ == SplitBehavior::isolated;
    const bool removed = behavior_ == SplitBehavior::removed;
    if (!isolated && !removed) {
      std::vector<ByteSpan> matches;
      pattern_.find_all(text, matches);
      emit_split(text, at_start, matches, behavior_, invert_, out);
      return;
    }
    // Isolated and Removed need no look at neighbouring spans: stream them.
    struct Visitor final : MatchVisitor {
      std::string_view text;
      bool at_start, keep_gaps, keep_matches;
      PieceSink* out;
      uint32_t prev = 0;
      void match(uint32_t begin, uint32_t end) override {
        if (keep_gaps) emit(*out, text, prev, begin, at_start);
        if (keep_matches) emit(*out, text, begin, end, at_start);
        prev = end;
      }
    } v;
    v.text = text;
    v.at_start = at_start;
    v.keep_gaps = isolated || !invert_;  // Removed drops the matches (the gaps when inverted)
    v.keep_matches = isolated || invert_;
    v.out = &out;
    pattern_.for_each_match(text, v);
    if (v.keep_gaps) emit(out, text, v.prev, static_cast<uint32_t>(text.size()), at_start);
  }

 private:
  Regex pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on characters satisfying Pred (Digits, Punctuation, WhitespaceSplit).
template <class Pred>
class CharSplitPreTokenizer final : public PreTokenizer {
 public:
  CharSplitPreTokenizer(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(std::string_view text, bool at_start, PieceSink& out) const override {
    std::vector<ByteSpan> matches;
    char_matches(text, pred_, matches);
    if (matches.empty()) {
      out.piece(text, at_start);
      return;
    }
    emit_split(text, at_start, matches, behavior_, false, out);
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <class Pred>
std::unique_ptr<PreTokenizer> make_char_split(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplitPreTokenizer<Pred>>(pred, behavior);
}

// tokenizers' Whitespace: keeps the matches of the Rust regex \w+|[^\w\s]+ and drops the rest.
class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(std::string_view text, bool at_start, PieceSink& out) const override {
    for (size_t i = 0; i < text.size();) {
      size_t start = i, next = i;
      char32_t cp = utf8_next(text, next);
      const bool word = is_rust_word_char(cp);
      if (!word && is_white_space(cp)) {
        i = next;
        continue;
      }
      i = next;
      while (i < text.size()) {
        size_t j = i;
        char32_t c = utf8_next(text, j);
        if (word ? !is_rust_word_char(c) : (is_rust_word_char(c) || is_white_space(c))) break;
        i = j;
      }
      emit(out, text, static_cast<uint32_t>(start), static_cast<uint32_t>(i), at_start);
    }
  }
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  explicit MetaspacePreTokenizer(MetaspaceOptions o) : o_(std::move(o)) {}
  void pre_tokenize(std::string_view text, bool at_start, PieceSink& out) const override {
    const std::string& rep = o_.replacement_utf8;
    std::string s;
    s.reserve(text.size() + rep.size());
    for (char c : text) {
      if (c == ' ') s += rep;
      else s += c;
    }
    const bool starts = s.compare(0, rep.size(), rep) == 0;
    const bool prepend = o_.scheme == PrependScheme::always  ? !starts
                         : o_.scheme == PrependScheme::first ? !starts && at_start
                                                             : false;
    if (prepend) s.insert(0, rep);
    if (!o_.split) {
      out.piece(s, at_start);
      return;
    }
    std::vector<ByteSpan> matches;
    const char32_t r = o_.replacement;
    char_matches(s, [r](char32_t c) { return c == r; }, matches);
    emit_split(s, at_start, matches, SplitBehavior::merged_with_next, false, out);
  }

 private:
  MetaspaceOptions o_;
};

}  // namespace

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const JsonRef& value) {
  if (value.is_null()) return nullptr;
  std::string type = value.at("type").as_string();
  if (type == "Sequence") {
    value.expect_keys({"type", "pretokenizers"});
    JsonRef list = value.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.array_size(); ++i) {
      if (list[i].is_null()) list[i].fail("must be a pre-tokenizer object, got null");
      parts.push_back(pre_tokenizer_from_json(list[i]));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "ByteLevel") {
    value.expect_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    value.get_bool("trim_offsets", true);  // type-checked; offsets only
    return std::make_unique<ByteLevelPreTokenizer>(value.get_bool("add_prefix_space", true),
                                                   value.get_bool("use_regex", true),
                                                   value.label() + ": " + value.where() + " (GPT-2 pattern)");
  }
  if (type == "Split") {
    value.expect_keys({"type", "pattern", "behavior", "invert"});
    return std::make_unique<SplitPreTokenizer>(pattern_from_json(value.at("pattern")),
                                               split_behavior_from_json(value.at("behavior")),
                                               value.get_bool("invert", false));
  }
  if (type == "Digits") {
    value.expect_keys({"type", "individual_digits"});
    bool individual = value.get_bool("individual_digits", false);
    return make_char_split([](char32_t c) { return is_numeric(c); },
                           individual ? SplitBehavior::isolated : SplitBehavior::contiguous);
  }
  if (type == "Metaspace") {
    value.expect_keys({"type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
    return std::make_unique<MetaspacePreTokenizer>(metaspace_options_from_json(value));
  }
  if (type == "Whitespace") {
    value.expect_keys({"type"});
    return std::make_unique<WhitespacePreTokenizer>();
  }
  if (type == "WhitespaceSplit") {
    value.expect_keys({"type"});
    return make_char_split([](char32_t c) { return is_white_space(c); }, SplitBehavior::removed);
  }
  if (type == "Punctuation") {
    value.expect_keys({"type", "behavior"});
    auto behavior = value.find("behavior");
    return make_char_split([](char32_t c) { return is_punctuation(c); },
                           behavior ? split_behavior_from_json(*behavior) : SplitBehavior::isolated);
  }
  value.fail_type(type, kSupported);
}

}  // namespace difftx::tok
