// Regular expressions of tokenizer.json files, run with PCRE2 (UTF, Unicode properties, JIT).
//
// tokenizer.json patterns are written for Oniguruma (what Hugging Face tokenizers compiles them
// with). The two engines agree on \p{..}, lookaround, (?i:..) and quantifiers; they differ on a few
// shorthand classes, which are rewritten before compiling so that matches are the same:
//   \s \S  Oniguruma: the White_Space property      PCRE2 (UCP): also U+180E   -> \p{White_Space}
//   \w \W  Oniguruma: Letter|Mark|Number|Pc         PCRE2 (UCP): L|N|_         -> [\p{L}\p{M}\p{N}\p{Pc}]
//   \h \H  Oniguruma: hexadecimal digit             PCRE2: horizontal space    -> [0-9a-fA-F]
// Oniguruma class intersections ([a-z&&[^x]]), nested classes, and \W or \H inside a class have no
// PCRE2 spelling here and are rejected with an error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace difftx::tok {

struct ByteSpan {
  uint32_t begin = 0, end = 0;  // byte offsets, [begin, end)
};

// Rewrites an Oniguruma pattern into PCRE2 syntax (see above). Throws ConfigError
// "<what>: regex ... uses <construct>, which difftx cannot translate".
std::string regex_onig_to_pcre2(std::string_view pattern, const std::string& what);

// Receives the matches of Regex::for_each_match.
class MatchVisitor {
 public:
  virtual void match(uint32_t begin, uint32_t end) = 0;

 protected:
  ~MatchVisitor() = default;
};

class Regex {
 public:
  // Compiles `pattern` (Oniguruma syntax) with PCRE2_UTF | PCRE2_UCP and JIT. `what` names the
  // pattern in errors, e.g. "tokenizer.json: pre_tokenizer.pattern.Regex". Throws ConfigError.
  Regex(std::string_view pattern, const std::string& what);
  // A literal string (the "String" patterns of Split/Replace): matched byte for byte.
  static Regex literal(std::string_view text, const std::string& what);

  // Appends every match in `text` (valid UTF-8) in order, with the iteration rules of the Rust
  // `onig` crate that tokenizers uses: search resumes at the end of the previous match, and an empty
  // match that ends where the previous match ended is skipped (the search moves on one character).
  // Thread-safe. Throws TextError when PCRE2 gives up (match or JIT stack limit).
  void find_all(std::string_view text, std::vector<ByteSpan>& out) const;
  // The same matches, handed to `visitor` one by one as they are found.
  void for_each_match(std::string_view text, MatchVisitor& visitor) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  struct Code;
  std::shared_ptr<const Code> code_;
  std::string pattern_;  // as given (for messages)
  std::string literal_;  // for literal patterns (no PCRE2 code)
  bool is_literal_ = false;
};

}  // namespace difftx::tok
